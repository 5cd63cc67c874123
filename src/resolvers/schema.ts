import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { builder } from './builder.ts';
// Each domain module registers its types and fields on the builder when imported.
import './assets.ts';
import './prices.ts';
import './partitions.ts';
import './candles.ts';
import './lake.ts';
import './ticks.ts';
import './pipeline.ts';

let schema: GraphQLSchema | undefined;

export function buildSchema(): GraphQLSchema {
  schema ??= builder.toSchema();
  return schema;
}

/** The checked-in contract: schema.graphql (docs/ARCHITECTURE.md §9). */
export function printedSchema(): string {
  return printSchema(lexicographicSortSchema(buildSchema())) + '\n';
}
