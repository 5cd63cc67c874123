import { renderGraphiQL } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';

/**
 * GraphiQL at /graphql for browsers, with every asset inlined from node_modules
 * (@graphql-yoga/render-graphiql bundles GraphiQL, its editor and workers): nothing is loaded from
 * a CDN, so it works offline and on networks that block them. Subscriptions go over graphql-ws.
 */
export const GRAPHIQL_DEFAULT_QUERY = `# LakeTS Live: the latest price of every symbol, and the last hour of
# one-minute candles of AAPL (always current: the open bar is included).
#
# Subscriptions run over WebSocket, e.g.
#   subscription { priceUpdated(symbols: ["AAPL"]) { symbol price time } }
# With authentication on (LAKETS_API_TOKENS or JWT), put your token in the
# Headers tab below: { "Authorization": "Bearer <token>" }

query Overview {
  latestPrices {
    symbol
    price
    time
  }
  candles(symbol: "AAPL", granularity: MINUTE, limit: 60) {
    time
    open
    high
    low
    close
    volume
    final
  }
}
`;

export const GRAPHIQL_OPTIONS: GraphiQLOptions = {
  title: 'LakeTS Live',
  subscriptionsProtocol: 'WS',
  defaultQuery: GRAPHIQL_DEFAULT_QUERY,
  shouldPersistHeaders: true,
};

const rendered = new Map<string, Uint8Array<ArrayBuffer>>();

/**
 * The page is about 9 MB of inlined JavaScript: rendered and encoded once, then every request
 * gets the same bytes (rendering it per request would cost the event loop milliseconds each time).
 */
export function renderGraphiQLOnce(options: GraphiQLOptions): Uint8Array<ArrayBuffer> {
  const key = JSON.stringify(options);
  let page = rendered.get(key);
  if (!page) rendered.set(key, (page = new TextEncoder().encode(renderGraphiQL(options))));
  return page;
}
