import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { GraphQLError, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer, type WebSocket } from 'ws';
import type { YogaServerInstance } from 'graphql-yoga';
import type { Authenticator } from './auth.ts';
import type { OriginPolicy } from './exposure.ts';
import type { Logger } from '../logger.ts';
import { sharedResultJson, type DirectDelivery } from './shared-subscriptions.ts';

export interface GraphqlWsOptions {
  server: http.Server;
  path: string;
  yoga: YogaServerInstance<any, any>;
  auth: Authenticator;
  origins: OriginPolicy;
  logger: Logger;
  newRequestId: () => string;
  /** Largest message a client may send (a query with its variables). */
  maxPayloadBytes: number;
  /** Operations one connection may run at once (each subscription holds a feed queue). */
  maxOperationsPerConnection: number;
  /** WebSocket connections open at once; an upgrade past it is refused with 503. */
  maxConnections: number;
}

interface SocketState {
  operations: Map<string, AbortController>;
  requestId: string;
}

function authorizationOf(params: Readonly<Record<string, unknown>> | undefined): unknown {
  if (!params) return undefined;
  // GraphiQL puts the headers tab into connectionParams as typed ("Authorization").
  for (const [key, value] of Object.entries(params)) if (key.toLowerCase() === 'authorization') return value;
  return undefined;
}

/**
 * A result shared by every client of a subscription (shared-subscriptions.ts) is serialised once:
 * graphql-ws stringifies each message itself, so its replacer puts this placeholder where the
 * payload goes and remembers the payload's JSON; the socket's send, called at once with that very
 * text, splices the JSON in. (JSON.rawJSON would say it directly, but it takes primitives only.)
 */
const SHARED_PLACEHOLDER = '\u0000lakets:shared-result';
const SHARED_PLACEHOLDER_TAIL = `${JSON.stringify(SHARED_PLACEHOLDER)}}`;
let pendingSharedJson: string | undefined;

function sharedPayloadReplacer(this: unknown, key: string, value: unknown): unknown {
  if (key !== 'payload') return value;
  const json = sharedResultJson(value);
  if (json === undefined) return value;
  pendingSharedJson = json;
  return SHARED_PLACEHOLDER;
}

function withSharedPayload(data: string): string {
  const json = pendingSharedJson;
  if (json === undefined || !data.endsWith(SHARED_PLACEHOLDER_TAIL)) return data;
  pendingSharedJson = undefined;
  return `${data.slice(0, -SHARED_PLACEHOLDER_TAIL.length)}${json}}`;
}

/** Bytes waiting on a socket past which a client is behind: its next message waits for these to be written. */
const SLOW_CLIENT_BYTES = 64 * 1024;

/** Shared subscription results for one operation of one socket, written as graphql-ws `next` messages. */
function directDelivery(socket: WebSocket, id: string): DirectDelivery {
  const prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  return {
    next(payloadJson) {
      if (socket.readyState !== socket.OPEN) return;
      const data = `${prefix}${payloadJson}}`;
      if (socket.bufferedAmount < SLOW_CLIENT_BYTES) return void socket.send(data);
      return new Promise<void>((resolve) => socket.send(data, () => resolve()));
    },
  };
}

function refuseUpgrade(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

/**
 * graphql-ws on the HTTP server's port and path, executing through yoga's envelop (same schema,
 * limits and error masking as HTTP). The handshake is refused unless it comes from an allowed
 * origin; the connection is closed (4403) unless `connectionParams.authorization` carries a valid
 * bearer credential when authentication is on. Each operation gets an AbortSignal that fires when
 * the client completes it or the socket closes, which cancels its database work.
 */
export function attachGraphqlWs(options: GraphqlWsOptions): { dispose(): Promise<void>; wss: WebSocketServer } {
  const { server, yoga, auth, origins, logger } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes });
  const states = new WeakMap<object, SocketState>();
  let capWarned = false;

  const onUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    let pathname: string;
    try {
      pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    } catch {
      return refuseUpgrade(socket, 400, 'Bad Request');
    }
    if (pathname !== options.path) return refuseUpgrade(socket, 404, 'Not Found');
    if (!origins.allowsHost(req.headers.host) || !origins.allows(req.headers.origin)) {
      logger.warn({ origin: req.headers.origin }, 'WebSocket from an origin not in LAKETS_CORS_ORIGINS refused');
      return refuseUpgrade(socket, 403, 'Forbidden');
    }
    // Each socket holds a file descriptor: past the cap, refuse before the process runs out of them.
    if (wss.clients.size >= options.maxConnections) {
      if (!capWarned) logger.warn({ limit: options.maxConnections }, 'WebSocket connection cap reached; upgrades refused with 503 until some close');
      capWarned = true;
      return refuseUpgrade(socket, 503, 'Service Unavailable');
    }
    capWarned = false;
    wss.handleUpgrade(req, socket, head, (ws) => {
      // A protocol error a client causes (an oversized or malformed frame) makes ws close that socket
      // (1009, 1002…) and emit 'error', which graphql-ws would print to stderr: any client could
      // then write to the server's stderr at will. It is logged here, at debug level, instead.
      const emit = ws.emit.bind(ws);
      ws.emit = ((event: string | symbol, ...args: unknown[]) => {
        if (event === 'error') {
          logger.debug({ err: (args[0] as Error | undefined)?.message }, 'WebSocket protocol error; socket closed');
          return true;
        }
        return emit(event, ...args);
      }) as typeof ws.emit;
      const send = ws.send.bind(ws);
      ws.send = ((data: unknown, ...rest: unknown[]) => (send as (...a: unknown[]) => void)(typeof data === 'string' ? withSharedPayload(data) : data, ...rest)) as typeof ws.send;
      wss.emit('connection', ws, req);
    });
  };
  server.on('upgrade', onUpgrade);

  const stateOf = (ctx: { extra: { socket: WebSocket } }): SocketState => {
    let state = states.get(ctx.extra.socket);
    if (!state) states.set(ctx.extra.socket, (state = { operations: new Map(), requestId: options.newRequestId() }));
    return state;
  };

  const wsServer = useServer(
    {
      jsonMessageReplacer: sharedPayloadReplacer,
      // A shared result goes out as it is (graphql-ws would copy it per client otherwise), so that
      // the replacer recognises it.
      onNext: (_ctx, _id, _payload, _args, result) => (sharedResultJson(result) !== undefined ? (result as never) : undefined),
      execute: (args: ExecutionArgs) => (args.rootValue as { execute: (a: ExecutionArgs) => unknown }).execute(args) as never,
      subscribe: (args: ExecutionArgs) => (args.rootValue as { subscribe: (a: ExecutionArgs) => unknown }).subscribe(args) as never,
      onConnect: async (ctx) => {
        const result = await auth.verify(authorizationOf(ctx.connectionParams));
        if (!result.ok) {
          logger.info({ requestId: stateOf(ctx).requestId, reason: result.reason }, 'WebSocket connection refused: not authenticated');
          return false; // graphql-ws closes with 4403 Forbidden
        }
        return true;
      },
      onSubscribe: async (ctx, id, payload) => {
        const state = stateOf(ctx);
        if (state.operations.size >= options.maxOperationsPerConnection) {
          return [
            new GraphQLError(`at most ${options.maxOperationsPerConnection} operations may run at once on one connection`, {
              extensions: { code: 'BAD_USER_INPUT', limit: 'operationsPerConnection' },
            }),
          ];
        }
        const controller = new AbortController();
        state.operations.set(id, controller);
        const fail = (errors: readonly GraphQLError[]) => {
          state.operations.delete(id);
          return [...errors];
        };
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          requestId: `${state.requestId}/${id}`,
          signal: controller.signal,
          directDelivery: directDelivery(ctx.extra.socket, id),
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (err) {
          return fail([err instanceof GraphQLError ? err : new GraphQLError('the query could not be parsed', { extensions: { code: 'BAD_USER_INPUT' } })]);
        }
        const errors = validate(schema, document);
        if (errors.length) return fail(errors);
        return {
          schema,
          operationName: payload.operationName ?? null,
          document,
          variableValues: payload.variables ?? null,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
      },
      onComplete: (ctx, id) => {
        const state = stateOf(ctx);
        state.operations.get(id)?.abort(new Error('operation completed'));
        state.operations.delete(id);
      },
      onClose: (ctx) => {
        const state = stateOf(ctx);
        for (const controller of state.operations.values()) controller.abort(new Error('connection closed'));
        state.operations.clear();
      },
    },
    wss,
  );

  return {
    wss,
    async dispose() {
      server.off('upgrade', onUpgrade);
      await wsServer.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
