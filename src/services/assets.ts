import type { Db } from '../db/pool.ts';
import type { StockAssetsTable } from '../db/tables.ts';
import { InputError, quoteForMessage } from './input-error.ts';

export type Asset = StockAssetsTable;

export const SYMBOL_PATTERN = /^[A-Z0-9.-]{1,16}$/;
/** Upper bound of symbols in one request (latestPrices, priceUpdated). */
export const MAX_SYMBOLS_PER_REQUEST = 100;

/**
 * The reference assets, cached briefly: every symbol argument is checked against it, and every
 * Price resolves its asset from it without a query per row.
 */
export class AssetCatalog {
  private cache: Map<string, Asset> | undefined;
  private loadedAt = 0;
  private loading: Promise<Map<string, Asset>> | undefined;

  constructor(
    private readonly db: Db,
    private readonly ttlMs = 10_000,
  ) {}

  async all(): Promise<Map<string, Asset>> {
    if (this.cache && Date.now() - this.loadedAt < this.ttlMs) return this.cache;
    this.loading ??= this.db
      .selectFrom('stock_assets')
      .selectAll()
      .orderBy('symbol')
      .execute()
      .then((rows) => {
        this.cache = new Map(rows.map((r) => [r.symbol, r]));
        this.loadedAt = Date.now();
        return this.cache;
      })
      .finally(() => (this.loading = undefined));
    return this.loading;
  }

  async get(symbol: string): Promise<Asset | undefined> {
    return (await this.all()).get(symbol);
  }

  /** Validates one symbol argument: well-formed and a known asset. */
  async requireSymbol(symbol: string, argument = 'symbol'): Promise<string> {
    if (!SYMBOL_PATTERN.test(symbol)) {
      throw new InputError(`${quoteForMessage(symbol)} is not a valid symbol: 1-16 characters of A-Z, 0-9, "." and "-"`, { argument });
    }
    if (!(await this.get(symbol))) throw new InputError(`unknown symbol "${symbol}"`, { argument });
    return symbol;
  }

  /** Validates a list argument; null means every known symbol. */
  async requireSymbols(symbols: readonly string[] | null | undefined, argument = 'symbols'): Promise<string[]> {
    if (symbols === null || symbols === undefined) return [...(await this.all()).keys()];
    if (symbols.length === 0) throw new InputError(`${argument} must not be empty (omit it for every symbol)`, { argument });
    if (symbols.length > MAX_SYMBOLS_PER_REQUEST) {
      throw new InputError(`too many symbols: ${symbols.length} given, at most ${MAX_SYMBOLS_PER_REQUEST} per request`, { argument });
    }
    const unique = [...new Set(symbols)];
    for (const s of unique) await this.requireSymbol(s, argument);
    return unique;
  }
}
