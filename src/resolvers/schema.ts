import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { builder } from './builder.ts';
// Each type's module registers the type and its root fields on the builder when imported.
import './date-time.ts';
import './asset.ts';
import './price.ts';
import './candle.ts';
import './watermark.ts';
import './partition.ts';
import './partition-counts.ts';
import './job-status.ts';
import './lake-status.ts';
import './tick.ts';
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
