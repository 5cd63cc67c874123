-- The product's tables (docs/ARCHITECTURE.md §3): the reference assets and the stock tick
-- ChronoTable with its last value cache.

CREATE TABLE IF NOT EXISTS public.stock_assets (
    symbol      text PRIMARY KEY CHECK (symbol ~ '^[A-Z0-9.-]{1,16}$'),
    name        text NOT NULL,
    sector      text NOT NULL,
    exchange    text NOT NULL,
    base_price  double precision NOT NULL CHECK (base_price > 0),
    volatility  double precision NOT NULL CHECK (volatility > 0 AND volatility < 5)
);

INSERT INTO public.stock_assets (symbol, name, sector, exchange, base_price, volatility) VALUES
    ('AAPL',    'Apple Inc.',                 'Technology',             'NASDAQ', 228.50,   0.25),
    ('MSFT',    'Microsoft Corporation',      'Technology',             'NASDAQ', 415.20,   0.22),
    ('NVDA',    'NVIDIA Corporation',         'Semiconductors',         'NASDAQ', 138.90,   0.50),
    ('GOOGL',   'Alphabet Inc. Class A',      'Communication Services', 'NASDAQ', 172.30,   0.28),
    ('AMZN',    'Amazon.com, Inc.',           'Consumer Discretionary', 'NASDAQ', 186.40,   0.30),
    ('TSLA',    'Tesla, Inc.',                'Consumer Discretionary', 'NASDAQ', 251.60,   0.60),
    ('JPM',     'JPMorgan Chase & Co.',       'Financials',             'NYSE',   212.80,   0.20),
    ('V',       'Visa Inc.',                  'Financials',             'NYSE',   281.10,   0.18),
    ('BTC-USD', 'Bitcoin',                    'Crypto',                 'CRYPTO', 67250.00, 0.65),
    ('ETH-USD', 'Ether',                      'Crypto',                 'CRYPTO', 3180.00,  0.75)
ON CONFLICT (symbol) DO NOTHING;

CREATE SEQUENCE IF NOT EXISTS public.stock_ticks_tick_id_seq;

-- tick_id gives every tick an identity: equal (time, symbol, price, volume) duplicates are legal,
-- and ties on time break on tick_id everywhere (latest price, open, close).
CREATE TABLE IF NOT EXISTS public.stock_ticks (
    time     timestamptz      NOT NULL,
    symbol   text             NOT NULL CHECK (symbol ~ '^[A-Z0-9.-]{1,16}$'),
    -- "< 'Infinity'" also refuses NaN, which sorts above every number in Postgres.
    price    double precision NOT NULL CHECK (price > 0 AND price < 'Infinity'),
    volume   double precision NOT NULL CHECK (volume >= 0 AND volume < 'Infinity'),
    tick_id  bigint           NOT NULL DEFAULT nextval('public.stock_ticks_tick_id_seq')
) PARTITION BY RANGE (time);

ALTER SEQUENCE public.stock_ticks_tick_id_seq OWNED BY public.stock_ticks.tick_id;

CREATE INDEX IF NOT EXISTS stock_ticks_symbol_time_idx ON public.stock_ticks (symbol, time);

SELECT lakets.create_chronotable('public.stock_ticks', 'time', interval '1 day', 3)
 WHERE NOT EXISTS (SELECT 1 FROM lakets.chronotables WHERE table_name = 'stock_ticks');

SELECT lakets.enable_lvc('stock_ticks', ARRAY['symbol'], ARRAY['time', 'price', 'volume'], 'time', 'tick_id')
 WHERE NOT EXISTS (SELECT 1 FROM lakets.lvc_tables WHERE table_name = 'stock_ticks');
