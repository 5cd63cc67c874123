// The one adaptor of the replication library (pg-logical-replication): every use of it, and every
// workaround for how it behaves, is here, so the rest of the sync sees plain events and positions.
//
// What it works around (docs/ARCHITECTURE.md H1):
// - the library acknowledges by itself on a timer even with auto-acknowledge off: the timer is set
//   to 0, and the slot is only ever confirmed with a position the caller says is durable;
// - it reports `lsn + 1` as flushed: confirm(position) passes position - 1, so the slot confirms
//   exactly `position`;
// - it has no flow control of its own that waits for the writer: pause() and resume() stop and
//   restart reading the socket, through the library's private connection (the only place that
//   reaches into it);
// - its parser turns values into JS types (Dates lose microseconds): inserts are decoded by
//   RowPgoutputPlugin into lake values instead.

import { LogicalReplicationService, type Pgoutput } from 'pg-logical-replication';
import { formatLsn, parseLsn } from '../lake/lsn.ts';
import type { Logger } from '../logger.ts';
import { SESSION_OPTIONS } from './connections.ts';
import { RowPgoutputPlugin, type RowPgoutputMessage } from './pgoutput-rows.ts';
import { ignoreWithReason } from './status.ts';

export interface ReplicationEvents {
  /** A decoded message (begin, insert, relation, commit, ...). */
  message(message: RowPgoutputMessage): void;
  /** A primary keepalive: the server's WAL end, and whether it asks for an answer. */
  keepalive(walEnd: bigint, shouldRespond: boolean): void;
  /** The server accepted START_REPLICATION. */
  started(): void;
  /** The stream failed or ended. */
  failed(error: Error): void;
}

export interface ReplicationStreamOptions {
  url: string;
  slot: string;
  publication: string;
  /** Ask for binary values (PostgreSQL 14+). */
  binary: boolean;
  log?: Logger;
}

type PausableSocket = { pause?: () => void; resume?: () => void };

export class ReplicationStream {
  private readonly service: LogicalReplicationService;
  private subscribed: Promise<void> | undefined;
  private paused = false;

  constructor(
    private readonly options: ReplicationStreamOptions,
    private readonly events: ReplicationEvents,
  ) {
    this.service = new LogicalReplicationService(
      { connectionString: options.url, application_name: 'lakets-cdf-sync-stream', options: SESSION_OPTIONS },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
    );
    this.service.on('error', (error: Error) => events.failed(error));
    this.service.on('data', (_lsn: string, message: Pgoutput.Message) => events.message(message as unknown as RowPgoutputMessage));
    this.service.on('heartbeat', (walEnd: string, _timestamp: number, shouldRespond: boolean) => {
      let position: bigint;
      try {
        position = parseLsn(walEnd);
      } catch (error) {
        events.failed(error as Error);
        return;
      }
      events.keepalive(position, shouldRespond);
    });
    this.service.on('start', () => events.started());
  }

  /** Streams the slot from where it was last confirmed. */
  start(): void {
    const plugin = new RowPgoutputPlugin({ protoVersion: 1, publicationNames: [this.options.publication], binary: this.options.binary });
    this.subscribed = this.service.subscribe(plugin, this.options.slot, '0/00000000').then(
      () => this.events.failed(new Error('replication stream ended')),
      (error: Error) => this.events.failed(error),
    );
  }

  /**
   * Confirms to the server that everything before `position` is durable, so the slot may forget it.
   * A confirmation that cannot be sent is lost with its connection; the next session confirms again.
   */
  confirm(position: bigint): void {
    if (position <= 0n) return;
    void this.service.acknowledge(formatLsn(position - 1n)).catch(ignoreWithReason(this.options.log, 'a confirmation was not sent (connection closing)'));
  }

  /**
   * Asks the server for a keepalive (a status message with a reply requested), confirming `position`
   * again: its WAL position lets the committed LSN advance while no change arrives.
   */
  async requestKeepalive(position: bigint): Promise<void> {
    if (position <= 0n) return;
    await this.service
      .acknowledge(formatLsn(position - 1n), true)
      .catch(ignoreWithReason(this.options.log, 'a keepalive request was not sent (connection closing)'));
  }

  /** Stops reading the socket: back-pressure while a backlog waits for the lake writer. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket()?.pause?.();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket()?.resume?.();
  }

  /** Ends the stream politely (CopyDone) and waits for the library to let go of it. */
  async stop(): Promise<void> {
    await this.service.stop().catch(ignoreWithReason(this.options.log, 'the replication stream did not stop cleanly; its connection is closed next'));
    await this.subscribed;
  }

  /** Closes the replication connection whatever its state. */
  async destroy(): Promise<void> {
    await this.service.destroy().catch(ignoreWithReason(this.options.log, 'closing the replication connection failed; it is gone either way'));
  }

  private socket(): PausableSocket | undefined {
    return (this.service as unknown as { _connection?: { stream?: PausableSocket } })._connection?.stream;
  }
}
