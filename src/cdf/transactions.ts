import type { Pgoutput } from 'pg-logical-replication';
import { parseLsn } from '../lake/lsn.ts';
import type { LakeRow, LakeTimestamp, LakeValue } from '../lake/writer.ts';
import type { RowPgoutputMessage } from './pgoutput-rows.ts';
import type { SourceTable } from './source-table.ts';

/** A source transaction received whole: its change events as lake rows, and their shadow `_seq` values. */
export interface ReceivedTransaction {
  commitLsn: bigint;
  /** The LSN just past its commit record: what the slot may be confirmed up to once it is durable. */
  endLsn: bigint;
  rows: LakeRow[];
  seqs: bigint[];
  /** The source commit's time (ms since the epoch, the server's clock). */
  commitTimeMs: number;
}

interface OpenTransaction {
  commitLsn: bigint;
  /** The value of every row's _commit_timestamp. */
  commitTimestamp: LakeTimestamp;
  commitTimeMs: number;
  rows: LakeRow[];
  seqs: bigint[];
}

/**
 * Turns the pgoutput messages of the shadow table's publication into whole transactions: a row per
 * insert into the shadow (its source columns, `_change_type`, then `_lsn` and `_commit_timestamp`
 * from the commit), handed over at the commit. Nothing of a transaction is handed over before its
 * commit, so one source transaction never spans two Delta commits.
 */
export class TransactionAssembler {
  private open: OpenTransaction | undefined;
  private readonly names: readonly string[];
  private readonly width: number;
  /**
   * Where each value of our rows sits in a relation's columns: the source columns in order, then
   * _change_type, then _seq (-1: absent). Per relation OID, rebuilt when the relation is re-sent.
   */
  private readonly columnPositions = new Map<number, Int32Array>();

  constructor(private readonly source: SourceTable) {
    this.names = source.columns.map((c) => c.name);
    this.width = source.columns.length;
  }

  /** A transaction has begun and not committed yet. */
  get inTransaction(): boolean {
    return this.open !== undefined;
  }

  /** Takes one message; returns the transaction its commit completes. */
  accept(message: RowPgoutputMessage): ReceivedTransaction | undefined {
    switch (message.tag) {
      case 'begin': {
        if (!message.commitLsn) throw new Error('begin message without a commit LSN');
        this.open = {
          commitLsn: parseLsn(message.commitLsn),
          commitTimestamp: { micros: message.commitTime as bigint },
          commitTimeMs: Number((message.commitTime as bigint) / 1000n),
          rows: [],
          seqs: [],
        };
        return undefined;
      }
      case 'insert': {
        const txn = this.open;
        if (!txn) throw new Error('insert outside a transaction');
        if (message.relation.schema !== 'lakets_cdf' || message.relation.name !== this.source.shadowTable) return undefined;
        const positions = this.positionsOf(message.relation);
        const values = message.values;
        const width = this.width;
        const row: LakeValue[] = new Array(width + 3);
        for (let i = 0; i <= width; i++) {
          const at = positions[i] as number;
          row[i] = at < 0 ? null : (values[at] ?? null);
        }
        row[width + 1] = txn.commitLsn;
        row[width + 2] = txn.commitTimestamp;
        txn.rows.push(row);
        const seqAt = positions[width + 1] as number;
        const seq = seqAt < 0 ? null : values[seqAt];
        if (typeof seq === 'bigint') txn.seqs.push(seq);
        else if (typeof seq === 'string') txn.seqs.push(BigInt(seq));
        return undefined;
      }
      case 'relation':
        this.columnPositions.delete(message.relationOid);
        return undefined;
      case 'commit': {
        const txn = this.open;
        this.open = undefined;
        if (!txn) throw new Error('commit outside a transaction');
        const endLsn = message.commitEndLsn ? parseLsn(message.commitEndLsn) : txn.commitLsn + 1n;
        return { commitLsn: txn.commitLsn, endLsn, rows: txn.rows, seqs: txn.seqs, commitTimeMs: txn.commitTimeMs };
      }
      default:
        return undefined; // type, origin, message, truncate: nothing to store
    }
  }

  private positionsOf(relation: Pgoutput.MessageRelation): Int32Array {
    let positions = this.columnPositions.get(relation.relationOid);
    if (!positions) {
      const index = new Map(relation.columns.map((c, i) => [c.name, i]));
      positions = Int32Array.from([...this.names, '_change_type', '_seq'], (name) => index.get(name) ?? -1);
      this.columnPositions.set(relation.relationOid, positions);
    }
    return positions;
  }
}
