import { GraphQLError, Kind, type DocumentNode, type ExecutionArgs, type ExecutionResult, type Source } from 'graphql';
import { useGraphQlJit } from '@envelop/graphql-jit';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from '../logger.ts';

/** A query is compiled from its this-many-th run on: one-off documents stay interpreted. */
export const COMPILE_AFTER_RUNS = 3;

/**
 * A document with exactly one operation, a query. The compiled code is kept per parsed document
 * (not per operation name), so a document holding several operations is never compiled: its
 * requests may name a different operation each time.
 */
function isSingleQuery(args: ExecutionArgs): boolean {
  let operation: string | undefined;
  for (const def of args.document.definitions) {
    if (def.kind !== Kind.OPERATION_DEFINITION) continue;
    if (operation !== undefined) return false;
    operation = def.operation;
  }
  return operation === 'query';
}

/** The offset in `body` of a 1-based line and column (line breaks as graphql-js counts them). */
function offsetOf(body: string, line: number, column: number): number {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const next = body.slice(offset).search(/\r\n|[\n\r]/);
    if (next < 0) break;
    offset += next + (body.startsWith('\r\n', offset + next) ? 2 : 1);
  }
  return offset + column - 1;
}

/**
 * graphql-jit locates an error by `locations` only (no nodes, no source positions), and yoga
 * rebuilds every error from its nodes or positions before sending it: the location would be lost.
 * Such an error is given its positions in the document's source again.
 */
function relocated(result: ExecutionResult, source: Source | undefined): ExecutionResult {
  if (!source || !result.errors?.some((e) => !e.nodes && !e.positions && e.locations?.length)) return result;
  const errors = result.errors.map((e) =>
    e.nodes || e.positions || !e.locations?.length
      ? e
      : new GraphQLError(e.message, {
          source,
          positions: e.locations.map((l) => offsetOf(source.body, l.line, l.column)),
          path: e.path ?? null,
          originalError: e.originalError ?? null,
          extensions: e.extensions,
        }),
  );
  return Object.assign({}, result, { errors });
}

/**
 * Hot queries run compiled (graphql-jit, through envelop): a document the server has seen
 * COMPILE_AFTER_RUNS times is compiled once into a function that resolves and serialises its
 * selection without walking the AST again; later runs of the same parsed document (yoga's parser
 * cache hands back the same object for the same text) reuse it. Compiling costs more than one
 * interpreted run, so a document that is sent once — any query a client makes up — is never
 * compiled: a stream of distinct documents cannot turn into a stream of compilations. Compiled
 * code sits in a WeakMap on the parsed document and goes with it when the parser cache evicts it.
 * Subscriptions are left to the shared subscription plugin.
 */
export function hotOperationsPlugins(logger: Logger): Plugin[] {
  const runs = new WeakMap<DocumentNode, number>();
  const jit = useGraphQlJit(
    {},
    {
      enableIf: (args) => {
        if (!isSingleQuery(args)) return false;
        const n = (runs.get(args.document) ?? 0) + 1;
        if (n <= COMPILE_AFTER_RUNS) runs.set(args.document, n);
        return n >= COMPILE_AFTER_RUNS;
      },
      onError: (result) => logger.warn({ errors: result.errors?.map((e) => e.message) }, 'graphql-jit could not compile a query; it runs interpreted'),
    },
  ) as Plugin;
  const locations: Plugin = {
    onExecute({ args }) {
      return {
        onExecuteDone({ result, setResult }) {
          if (!('errors' in result) || !result.errors) return; // (a streamed result is never compiled here)
          const fixed = relocated(result as ExecutionResult, args.document.loc?.source);
          if (fixed !== result) setResult(fixed);
        },
      };
    },
  };
  return [jit, locations];
}
