import { createSourceEventStream, execute, type DocumentNode, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';

/**
 * Subscriptions fan one event out to many clients: 10,000 dashboards on priceUpdated get the very
 * same Price object for a change of AAPL. Executing the selection (and serialising the result)
 * once per client would cost 10,000 times what one client costs. So each event is executed once
 * per *distinct subscription* — the same parsed document (yoga's parser cache hands back the same
 * object for the same text), operation and variables — and every client of that subscription gets
 * the same result object; graphql-ws.ts then serialises a shared result once (sharedResultJson).
 *
 * What makes this sound: a subscription's per-event selection depends on the event and the
 * arguments only. No field of this schema reads who asked (the context carries the services, a
 * request id for logs and a cancellation signal; nothing an event's fields resolve with).
 * Each client keeps its own source queue, so a slow client still gets the latest value per key
 * and never a backlog; only the work per event is shared.
 */

/** Results executed for an event, per subscription key; they go when the event object does. */
const resultsByEvent = new WeakMap<object, Map<string, Promise<ExecutionResult> | ExecutionResult>>();
/** Results that more than one client may be sent: their JSON is computed once (sharedResultJson). */
const sharedResults = new WeakSet<object>();
const sharedJson = new WeakMap<object, string>();

/** Counters for tests: events executed, results serialised, results handed out to clients, and of those the ones written straight to a socket. */
export const sharedSubscriptionStats = { executions: 0, serialisations: 0, deliveries: 0, direct: 0 };

/** The JSON of a result handed to several clients, computed on first use; undefined for any other value. */
export function sharedResultJson(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || !sharedResults.has(value)) return undefined;
  let json = sharedJson.get(value);
  if (json === undefined) {
    sharedSubscriptionStats.serialisations++;
    sharedJson.set(value, (json = JSON.stringify(value)));
  }
  return json;
}

/** An async iterator that maps each value of `source` and passes return()/throw() through, so that a client leaving closes its queue. */
function mapAsyncIterator<T, U>(source: AsyncIterable<T>, map: (value: T) => U | Promise<U>): AsyncIterableIterator<U> {
  const it = source[Symbol.asyncIterator]();
  const done = (): IteratorResult<U> => ({ value: undefined, done: true });
  return {
    async next() {
      const r = await it.next();
      return r.done ? done() : { value: await map(r.value), done: false };
    },
    async return() {
      await it.return?.();
      return done();
    },
    async throw(err?: unknown) {
      if (it.throw) await it.throw(err);
      throw err;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * Where a client's shared results may be written straight to its socket (graphql-ws.ts makes one
 * per operation): `next` sends one `next` message with this payload JSON and returns a promise
 * when the client is behind (the next one waits for it, and meanwhile its queue keeps only the
 * latest value per key).
 */
export interface DirectDelivery {
  next(payloadJson: string): Promise<void> | void;
}

/**
 * Sends shared, error-free results through `direct` itself and hands the iterator's consumer
 * (graphql-ws's loop over the subscription) only what it must send itself: results with errors,
 * which go through masking per client. For each message the server then does a string
 * concatenation and a socket write; graphql-ws's loop, its hooks and its promise per message are
 * spent only on the rare error.
 */
function deliverDirectly(results: AsyncIterableIterator<ExecutionResult>, direct: DirectDelivery): AsyncIterableIterator<ExecutionResult> {
  let ended = false;
  return {
    async next() {
      for (;;) {
        const r = await results.next();
        if (r.done || ended) return r.done ? r : { value: undefined, done: true };
        const json = r.value.errors ? undefined : sharedResultJson(r.value);
        if (json === undefined) return r;
        sharedSubscriptionStats.direct++;
        const wait = direct.next(json);
        if (wait) await wait;
      }
    },
    async return() {
      ended = true;
      return (await results.return?.()) ?? { value: undefined, done: true };
    },
    async throw(err?: unknown) {
      ended = true;
      return (await results.throw?.(err)) ?? { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/**
 * The envelop plugin: subscriptions resolve their source stream per client (their own queue),
 * then execute each event once per distinct subscription; over graphql-ws the shared results are
 * written to the socket directly (DirectDelivery in the context).
 */
export function sharedSubscriptionsPlugin(): Plugin {
  const documentIds = new WeakMap<DocumentNode, number>();
  let nextDocumentId = 0;
  const keyOf = (args: ExecutionArgs): string => {
    let id = documentIds.get(args.document);
    if (id === undefined) documentIds.set(args.document, (id = nextDocumentId++));
    const vars = args.variableValues && Object.keys(args.variableValues).length ? JSON.stringify(args.variableValues) : '';
    return `${id}\u0000${args.operationName ?? ''}\u0000${vars}`;
  };

  const subscribe = async (args: ExecutionArgs) => {
    const source = await createSourceEventStream(args);
    if (!isAsyncIterable(source)) return source; // errors of the subscription itself: this client's
    const key = keyOf(args);
    const results = mapAsyncIterator(source, (event: unknown) => {
      sharedSubscriptionStats.deliveries++;
      if (typeof event !== 'object' || event === null) return execute({ ...args, rootValue: event });
      let byKey = resultsByEvent.get(event);
      if (!byKey) resultsByEvent.set(event, (byKey = new Map()));
      let result = byKey.get(key);
      if (!result) {
        sharedSubscriptionStats.executions++;
        const executed = execute({ ...args, rootValue: event });
        const mark = (r: ExecutionResult) => {
          sharedResults.add(r);
          return r;
        };
        result = executed instanceof Promise ? executed.then(mark) : mark(executed);
        byKey.set(key, result);
      }
      return result;
    });
    const direct = (args.contextValue as { directDelivery?: DirectDelivery } | undefined)?.directDelivery;
    return direct ? deliverDirectly(results, direct) : results;
  };

  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(subscribe as never);
    },
  };
}
