// A share of the fan-out benchmark's clients, in a process of its own (forked by bench/fanout.ts,
// so that the clients' CPU is not the server's): `count` real graphql-ws clients, one WebSocket and
// one priceUpdated subscription each, on symbols taken in turn from the list. It measures, per
// message, the time from the commit of the tick's batch (sent by the parent over IPC) to receipt.
// Usage: fanout-clients.ts <graphql url> <count> <symbol,symbol,…>
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

interface ClientState {
  client: Client;
  lastKey: string | undefined;
  connected: boolean;
  failed: boolean;
  initial: boolean;
  messages: number;
  duplicates: number;
}

type FromParent =
  | { type: 'connect'; perSecond: number }
  | { type: 'batch'; keys: string[]; commitAt: number }
  | { type: 'measure'; on: boolean }
  | { type: 'report' }
  | { type: 'close' };

const [url, countText, symbolsText] = process.argv.slice(2) as [string, string, string];
const count = Number(countText);
const symbols = symbolsText.split(',');
const now = () => performance.timeOrigin + performance.now();

const states: ClientState[] = [];
const commitAt = new Map<string, number>();
/** Receipts measured before their batch's commit time arrived over IPC. */
let pending: Array<[string, number]> = [];
let measuring = false;
const latencies: number[] = [];
let measuredMessages = 0;

function received(state: ClientState, data: { priceUpdated?: { symbol: string; time: string } } | undefined): void {
  const at = now();
  const p = data?.priceUpdated;
  if (!p) return;
  state.messages++;
  const key = `${p.symbol}|${p.time}`;
  // One symbol per client: a repeat of the last (symbol, time) is a message sent twice.
  if (key === state.lastKey) state.duplicates++;
  state.lastKey = key;
  if (!state.initial) {
    state.initial = true;
    return;
  }
  if (!measuring) return;
  measuredMessages++;
  const committed = commitAt.get(key);
  if (committed === undefined) pending.push([key, at]);
  else latencies.push(at - committed);
}

function open(index: number): void {
  const symbol = symbols[index % symbols.length]!;
  const state: ClientState = { client: undefined as unknown as Client, lastKey: undefined, connected: false, failed: false, initial: false, messages: 0, duplicates: 0 };
  state.client = createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    on: {
      connected: () => (state.connected = true),
      closed: () => {
        if (!state.connected) state.failed = true;
      },
    },
  });
  state.client.subscribe<{ priceUpdated: { symbol: string; time: string } }>(
    { query: 'subscription($s: [String!]) { priceUpdated(symbols: $s) { symbol price time } }', variables: { s: [symbol] } },
    { next: (v) => received(state, v.data ?? undefined), error: () => (state.failed = true), complete: () => undefined },
  );
  states.push(state);
}

function connect(perSecond: number): void {
  let next = 0;
  const stepMs = 50;
  const perStep = Math.max(1, Math.round((perSecond * stepMs) / 1000));
  const timer = setInterval(() => {
    for (let i = 0; i < perStep && next < count; i++) open(next++);
    if (next >= count) clearInterval(timer);
  }, stepMs);
}

function report() {
  for (const [key, at] of pending) {
    const committed = commitAt.get(key);
    if (committed !== undefined) latencies.push(at - committed);
  }
  pending = [];
  return {
    clients: states.length,
    connected: states.filter((s) => s.connected).length,
    failed: states.filter((s) => s.failed).length,
    withInitialPrice: states.filter((s) => s.initial).length,
    messages: states.reduce((n, s) => n + s.messages, 0),
    duplicates: states.reduce((n, s) => n + s.duplicates, 0),
    measuredMessages,
    latencies,
  };
}

process.on('message', (message: FromParent) => {
  switch (message.type) {
    case 'connect':
      return connect(message.perSecond);
    case 'batch': {
      for (const key of message.keys) commitAt.set(key, message.commitAt);
      if (pending.length) {
        const still: Array<[string, number]> = [];
        for (const [key, at] of pending) {
          const committed = commitAt.get(key);
          if (committed === undefined) still.push([key, at]);
          else latencies.push(at - committed);
        }
        pending = still;
      }
      return;
    }
    case 'measure':
      measuring = message.on;
      return;
    case 'report':
      return process.send!({ report: report() });
    case 'close':
      Promise.all(states.map((s) => s.client.dispose())).finally(() => process.exit(0));
      return;
  }
});
process.on('disconnect', () => process.exit(0));
process.send!({ port: 0 }); // ready
