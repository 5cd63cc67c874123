import { TICK_TABLE } from '../config.ts';
import type { LakeStatus, MissingLakeHistory } from '../services/pipeline.ts';
import { builder } from './builder.ts';
import { publicFailure } from './public-errors.ts';

export const MissingLakeHistoryRef = builder.objectRef<MissingLakeHistory>('MissingLakeHistory').implement({
  description:
    'History the lake no longer holds: it was lost (emptied or gone) and rebuilt from the chunks still in Postgres, so the rows of chunks dropped before then are missing from it. Reported, never refilled.',
  fields: (t) => ({
    rebuiltAt: t.field({ type: 'DateTime', description: 'When the lake was rebuilt from the resident chunks.', resolve: (m) => m.rebuiltAt }),
    chunks: t.float({ description: 'Dropped chunks whose rows are missing from the lake.', resolve: (m) => m.chunks }),
    rows: t.float({ description: 'Their rows.', resolve: (m) => m.rows }),
    from: t.field({ type: 'DateTime', nullable: true, description: 'Start of the earliest missing chunk.', resolve: (m) => m.from }),
    to: t.field({ type: 'DateTime', nullable: true, description: 'End of the latest missing chunk.', resolve: (m) => m.to }),
  }),
});

export const LakeStatusRef = builder.objectRef<LakeStatus>('LakeStatus').implement({
  description: 'The change-feed sync into the Delta Lake table (lakets.cdf_state and its replication slot).',
  fields: (t) => ({
    state: t.exposeString('state', { description: 'STREAMING only while the sync runs healthily.' }),
    committedLsn: t.exposeString('committedLsn', { nullable: true, description: 'Every source commit before this LSN is durable in the lake.' }),
    deltaVersion: t.float({ nullable: true, resolve: (l) => l.deltaVersion }),
    rowsSynced: t.float({ description: 'Change events written to the lake.', resolve: (l) => l.rowsSynced }),
    updatedAt: t.field({ type: 'DateTime', nullable: true, resolve: (l) => l.updatedAt }),
    slotName: t.exposeString('slotName', { nullable: true }),
    slotActive: t.exposeBoolean('slotActive'),
    slotRetainedBytes: t.float({
      nullable: true,
      description: 'WAL the replication slot holds back on the server: grows without bound while the sync is stopped.',
      resolve: (l) => l.slotRetainedBytes,
    }),
    slotLagBytes: t.float({ nullable: true, description: 'How far the sync’s confirmed position trails the server’s WAL.', resolve: (l) => l.slotLagBytes }),
    error: t.string({
      nullable: true,
      description: 'Why the sync stopped, as a kind; the message itself is in the server log.',
      resolve: (l) => publicFailure(l.error),
    }),
    missingHistory: t.field({
      type: MissingLakeHistoryRef,
      nullable: true,
      description: 'Set once the lake was lost and rebuilt: the history of dropped chunks it no longer holds. Null while the lake holds all of it.',
      resolve: (l) => l.missingHistory ?? null,
    }),
  }),
});

builder.queryField('lake', (t) =>
  t.field({
    type: LakeStatusRef,
    nullable: true,
    description: `State of the change-feed sync of ${TICK_TABLE} into the lake; null when sync is not enabled.`,
    complexity: 50,
    resolve: async (_root, _args, ctx) => (await ctx.services.pipeline.read()).lake ?? null,
  }),
);
