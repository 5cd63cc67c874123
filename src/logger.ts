import { pino, type Logger } from 'pino';

export type { Logger };

/** The process's logger: JSON lines on stdout at `level` (Config.logLevel, LOG_LEVEL). */
export function createLogger(level: string): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
}
