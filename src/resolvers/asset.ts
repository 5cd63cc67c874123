import { MAX_SYMBOLS_PER_REQUEST, type Asset } from '../services/assets.ts';
import { builder } from './builder.ts';

export const AssetRef = builder.objectRef<Asset>('Asset').implement({
  description: 'A tradable instrument of the reference table stock_assets.',
  fields: (t) => ({
    symbol: t.exposeString('symbol'),
    name: t.exposeString('name'),
    sector: t.exposeString('sector'),
    exchange: t.exposeString('exchange'),
    basePrice: t.exposeFloat('base_price', { description: 'Reference price the synthetic feed starts from.' }),
    volatility: t.exposeFloat('volatility', { description: 'Annualised volatility used by the synthetic feed.' }),
  }),
});

builder.queryField('assets', (t) =>
  t.field({
    type: [AssetRef],
    description: 'Every reference asset, ordered by symbol.',
    complexity: { field: 1, multiplier: MAX_SYMBOLS_PER_REQUEST },
    resolve: async (_root, _args, ctx) => [...(await ctx.services.assets.all()).values()],
  }),
);
