import type { Response } from 'express';
import type { ErrorCode } from '@doppel/schemas';

export const okBody = <T>(response: T) => ({ global_status: 1 as const, error_message: '' as const, response });

export const errorBody = (code: ErrorCode, message: string) => ({
  global_status: 0 as const,
  error_message: message,
  error_code: code,
  response: {},
});

export function sendOk<T>(res: Response, response: T, status = 200): void {
  res.status(status).json(okBody(response));
}

export function sendError(res: Response, status: number, code: ErrorCode, message: string, retryAfter?: number): void {
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(Math.max(1, Math.ceil(retryAfter))));
  res.status(status).json(errorBody(code, message));
}
