import type { PartitionCounts } from '../services/pipeline.ts';
import { builder } from './builder.ts';

export const PartitionCountsRef = builder.objectRef<PartitionCounts>('PartitionCounts').implement({
  description: 'Chunks by lifecycle status, and the rows and bytes still resident in Postgres.',
  fields: (t) => ({
    active: t.int({ resolve: (p) => p.active }),
    tiered: t.int({ resolve: (p) => p.tiered }),
    dropped: t.int({ resolve: (p) => p.dropped }),
    residentRows: t.float({ resolve: (p) => p.residentRows }),
    residentBytes: t.float({ resolve: (p) => p.residentBytes }),
    droppedRows: t.float({ resolve: (p) => p.droppedRows }),
  }),
});
