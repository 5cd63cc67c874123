import { EventEmitter } from 'node:events';
import pg from 'pg';
import type { Logger } from '../logger.ts';

export type NotificationHandler = (payload: unknown) => void;
export type ResyncHandler = () => void;

/**
 * One LISTEN connection per process (docs/ARCHITECTURE.md §9), shared by every subscription. It needs a direct,
 * unpooled connection. When the connection is lost (server restart, pg_terminate_backend) it
 * reconnects with backoff and tells every consumer to resync: notifications sent while it was
 * away are gone, so consumers re-read the truth from the database.
 */
export class ListenHub {
  private client: pg.Client | undefined;
  private readonly handlers = new Map<string, Set<NotificationHandler>>();
  private readonly resyncHandlers = new Set<ResyncHandler>();
  private readonly events = new EventEmitter();
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private _backendPid: number | undefined;
  private _connected = false;
  private fenceOnWire: Promise<void> | undefined;
  /** Fences sent so far (reads that arrive together share one). */
  fencesSent = 0;
  private fenceNext: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly logger: Logger,
    private readonly channels: readonly string[],
  ) {}

  get backendPid(): number | undefined {
    return this._backendPid;
  }

  get connected(): boolean {
    return this._connected;
  }

  /** Resolves once the first connection is listening (retries in the background otherwise). */
  async start(): Promise<void> {
    await this.connect();
  }

  on(channel: string, handler: NotificationHandler): () => void {
    let set = this.handlers.get(channel);
    if (!set) this.handlers.set(channel, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  onResync(handler: ResyncHandler): () => void {
    this.resyncHandlers.add(handler);
    return () => this.resyncHandlers.delete(handler);
  }

  /**
   * Resolves once every notification committed before this call has been dispatched to the
   * handlers; rejects while the connection is down. It is one empty query on the listening
   * connection: a transaction's commit signals the listening backends before the writer hears
   * that it committed, and a backend sends the notifications it was signalled for before it says
   * it is ready for the next query, on the same socket, so the handlers run before the query's
   * answer resolves this promise. Callers arriving while one fence is on the wire share the next.
   */
  fence(): Promise<void> {
    if (!this.fenceOnWire) return this.sendFence();
    if (!this.fenceNext) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      this.fenceNext = { promise, resolve, reject };
    }
    return this.fenceNext.promise;
  }

  /** Resolves on the next (re)connection; used by tests and readiness checks. */
  waitForConnection(): Promise<void> {
    if (this._connected) return Promise.resolve();
    return new Promise((resolve) => this.events.once('connected', resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    const client = this.client;
    this.client = undefined;
    this._connected = false;
    await client?.end().catch(() => undefined);
  }

  private sendFence(): Promise<void> {
    this.fencesSent++;
    const client = this._connected ? this.client : undefined;
    const sent = client ? client.query('').then(() => undefined) : Promise.reject(new Error('the LISTEN connection is down'));
    this.fenceOnWire = sent;
    const done = () => {
      // The callers that arrived meanwhile get a fence sent after they arrived.
      const next = this.fenceNext;
      this.fenceNext = undefined;
      this.fenceOnWire = undefined;
      if (next) this.sendFence().then(next.resolve, next.reject);
    };
    sent.then(done, done);
    return sent;
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: 'lakets-listener',
      keepAlive: true,
    });
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, undefined));
    client.on('notification', (msg) => this.dispatch(msg.channel, msg.payload));
    try {
      await client.connect();
      for (const channel of this.channels) await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      this._backendPid = rows[0]?.pid;
    } catch (err) {
      this.lost(client, err as Error);
      if (this.attempt === 1) this.logger.warn({ err: (err as Error).message }, 'listener could not connect; retrying');
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    const reconnected = this.attempt > 0;
    this.client = client;
    this.attempt = 0;
    this._connected = true;
    this.events.emit('connected');
    if (reconnected) {
      this.logger.info({ pid: this._backendPid }, 'listener reconnected; resyncing subscribers');
      for (const handler of this.resyncHandlers) handler();
    }
  }

  private lost(client: pg.Client, err: Error | undefined): void {
    if (this.client !== undefined && this.client !== client) return; // an old client's late event
    if (this.reconnectTimer || this.closed) return;
    this.client = undefined;
    this._connected = false;
    this._backendPid = undefined;
    client.removeAllListeners('end');
    void client.end().catch(() => undefined);
    this.attempt += 1;
    const delay = Math.min(5_000, 50 * 2 ** Math.min(this.attempt, 7));
    if (err && this.attempt === 1) this.logger.warn({ err: err.message }, 'listener connection lost; reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.closed) void this.connect();
    }, delay);
  }

  private dispatch(channel: string, payload: string | undefined): void {
    const set = this.handlers.get(channel);
    if (!set || set.size === 0) return;
    let parsed: unknown = payload;
    try {
      parsed = payload ? JSON.parse(payload) : undefined;
    } catch {
      // A non-JSON payload is passed on as text; consumers treat unknown payloads as "resync".
    }
    for (const handler of set) handler(parsed);
  }
}
