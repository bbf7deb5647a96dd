import { ERROR_CATALOG, type ErrorCode } from '@doppel/schemas';

/**
 * The one error type. Anything thrown that is not an AppError is treated as a bug:
 * logged in full and answered with a generic 500.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds a client should wait before retrying (429/503). */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message: string, opts: { status?: number; retryAfter?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = opts.status ?? ERROR_CATALOG[code];
    this.retryAfter = opts.retryAfter;
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;

/** Maps any error to the public fields of an item-level failure (batch results). */
export function toItemError(e: unknown): { error_code: ErrorCode; error_message: string; status: number } {
  if (isAppError(e)) return { error_code: e.code, error_message: e.message, status: e.status };
  return { error_code: 'INTERNAL', error_message: 'internal error', status: 500 };
}
