import { MAX_SYMBOLS_PER_REQUEST } from '../services/assets.ts';
import type { Price } from '../services/prices.ts';
import { AssetRef } from './asset.ts';
import { builder } from './builder.ts';

export const PriceRef = builder.objectRef<Price>('Price').implement({
  description: 'The latest tick of a symbol, from the last value cache.',
  fields: (t) => ({
    id: t.id({ description: 'A stable key for normalised caches: one per symbol, the same in every query and update.', resolve: (p) => `Price:${p.symbol}` }),
    symbol: t.exposeString('symbol'),
    price: t.exposeFloat('price'),
    volume: t.exposeFloat('volume'),
    time: t.expose('time', { type: 'DateTime', description: 'Event time of the tick.' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime', description: 'When the cache took this tick.' }),
    asset: t.field({
      type: AssetRef,
      nullable: true,
      resolve: (price, _args, ctx) => ctx.services.assets.get(price.symbol),
    }),
  }),
});

/** A list of symbols costs its length (omitted: every symbol, priced as the largest list allowed). */
function symbolsCost(symbols: readonly string[] | null | undefined): { field: number; multiplier: number } {
  const n = Math.max(1, symbols ? symbols.length : MAX_SYMBOLS_PER_REQUEST);
  return { field: n, multiplier: n };
}

builder.queryField('latestPrice', (t) =>
  t.field({
    type: PriceRef,
    nullable: true,
    description: 'The latest price of a symbol; null while the symbol has no tick yet.',
    args: { symbol: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const symbol = await ctx.services.assets.requireSymbol(args.symbol);
      return (await ctx.services.prices.latest([symbol], ctx.signal))[0] ?? null;
    },
  }),
);

builder.queryField('latestPrices', (t) =>
  t.field({
    type: [PriceRef],
    description: 'Latest prices of the given symbols (at most 100), or of every symbol when omitted; symbols without ticks are left out.',
    args: { symbols: t.arg.stringList({ required: false }) },
    complexity: (args) => symbolsCost(args.symbols),
    resolve: async (_root, args, ctx) => ctx.services.prices.latest(await ctx.services.assets.requireSymbols(args.symbols), ctx.signal),
  }),
);

builder.subscriptionField('priceUpdated', (t) =>
  t.field({
    type: PriceRef,
    description:
      'The current price of each requested symbol at once, then every change. Updates are coalesced per symbol (latest wins) for slow clients. Omit symbols for all of them (at most 100 when given).',
    args: { symbols: t.arg.stringList({ required: false }) },
    complexity: (args) => symbolsCost(args.symbols),
    subscribe: async (_root, args, ctx) => {
      const symbols = args.symbols ? await ctx.services.assets.requireSymbols(args.symbols) : null;
      return ctx.services.prices.subscribe(symbols);
    },
    resolve: (price) => price,
  }),
);
