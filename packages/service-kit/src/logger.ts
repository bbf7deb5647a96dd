import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export function createLogger(service: string, level: LevelWithSilent | string = 'info'): Logger {
  return pino({ name: service, level, base: { service } });
}
