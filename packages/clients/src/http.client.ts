import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { ErrorEnvelope, ERROR_CATALOG, validate, type ErrorCode, type Static, type TSchema } from '@doppel/schemas';
import { AppError } from '@doppel/service-kit';

export interface ClientOptions {
  /** e.g. http://127.0.0.1:8500 */
  baseUrl: string;
  /** Whole-request deadline (connect + send + wait + read). */
  timeoutMs?: number;
  /** Extra attempts for idempotent calls on transient failures. */
  retries?: number;
  /** First back-off delay; doubles on each retry. */
  retryDelayMs?: number;
}

export interface CallOptions<S extends TSchema> {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: unknown;
  params?: Record<string, string | number | boolean>;
  /** Success envelope schema the reply is validated against. */
  schema: S;
  /**
   * Safe to send twice. Non-idempotent calls are retried only when the connection was
   * refused, i.e. when the request provably never reached the service.
   */
  idempotent: boolean;
  timeoutMs?: number;
  /** Overrides the client's retry count (probes use 0: they must answer fast). */
  retries?: number;
}

type EnvelopeBody<S extends TSchema> = Static<S> extends { response: infer R } ? R : never;

const TRANSIENT_CONNECT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);
const TRANSIENT_MIDWAY = new Set(['ECONNRESET', 'EPIPE', 'ERR_SOCKET_CONNECTION_TIMEOUT']);
const RETRY_STATUSES = new Set([502, 503, 504]);


const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The one HTTP core under every service client: envelope unwrapping, response
 * validation, timeouts, bounded retries and the mapping of every failure to AppError.
 */
export class ServiceHttp {
  readonly service: string;
  readonly baseUrl: string;
  private readonly http: AxiosInstance;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;

  constructor(service: string, opts: ClientOptions) {
    this.service = service;
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 100;
    this.http = axios.create({
      baseURL: this.baseUrl,
      // Statuses are interpreted below, so axios must not throw on them.
      validateStatus: () => true,
      maxBodyLength: Infinity,
      maxContentLength: Infinity,
      httpAgent: new HttpAgent({ keepAlive: true }),
      httpsAgent: new HttpsAgent({ keepAlive: true }),
      headers: { accept: 'application/json' },
      transitional: { clarifyTimeoutError: true, silentJSONParsing: true, forcedJSONParsing: true },
    });
  }

  async call<S extends TSchema>(opts: CallOptions<S>): Promise<EnvelopeBody<S>> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const retries = opts.retries ?? this.retries;
    for (let attempt = 0; ; attempt++) {
      let res: AxiosResponse<unknown>;
      try {
        res = await this.http.request<unknown>({
          method: opts.method,
          url: opts.path,
          data: opts.body,
          params: opts.params,
          timeout: timeoutMs,
          // axios' `timeout` is an idle timeout on the socket; the signal bounds the whole call.
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        const retryable = TRANSIENT_CONNECT.has(code) || (opts.idempotent && TRANSIENT_MIDWAY.has(code));
        if (retryable && attempt < retries) {
          await pause(this.retryDelayMs * 2 ** attempt);
          continue;
        }
        throw this.transportError(opts, err, timeoutMs);
      }
      if (opts.idempotent && RETRY_STATUSES.has(res.status) && attempt < retries) {
        await pause(this.retryDelayMs * 2 ** attempt);
        continue;
      }
      return this.interpret(opts, res);
    }
  }

  private where(opts: { method: string; path: string }): string {
    return `${this.service} ${opts.method} ${opts.path}`;
  }

  private transportError(opts: { method: string; path: string }, err: unknown, timeoutMs: number): AppError {
    const code = (err as { code?: string }).code ?? '';
    const what = this.where(opts);
    if (code === 'ETIMEDOUT' || code === 'ECONNABORTED' || code === 'ERR_CANCELED' || (err as Error).name === 'TimeoutError') {
      return new AppError('DOWNSTREAM_TIMEOUT', `${what}: no answer within ${timeoutMs} ms`, { cause: err });
    }
    if (TRANSIENT_CONNECT.has(code)) {
      return new AppError('UNAVAILABLE', `${this.service} is unreachable at ${this.baseUrl} (${code})`, { cause: err, retryAfter: 1 });
    }
    return new AppError('DOWNSTREAM_FAILURE', `${what}: ${code || (err as Error).message}`, { cause: err });
  }

  private interpret<S extends TSchema>(opts: CallOptions<S>, res: AxiosResponse<unknown>): EnvelopeBody<S> {
    const what = this.where(opts);
    if (res.status >= 200 && res.status < 300) {
      const data = res.data;
      const ok = validate(opts.schema, data);
      if (!ok.ok) throw new AppError('DOWNSTREAM_FAILURE', `${what}: unexpected response (${ok.error.message})`);
      return (ok.value as { response: EnvelopeBody<S> }).response;
    }
    const env = validate(ErrorEnvelope, res.data);
    const downstream: { code: ErrorCode; message: string } | undefined = env.ok
      ? { code: env.value.error_code, message: env.value.error_message }
      : undefined;
    // A 4xx is the caller's fault (bad path, bad image): its code and status are passed
    // through unchanged so the end user sees what actually went wrong.
    // NOT_FOUND is "no such route": a client/service version mismatch, not the caller's fault.
    if (res.status >= 400 && res.status < 500 && downstream && downstream.code !== 'NOT_FOUND') {
      const retryAfter = Number(res.headers['retry-after']);
      return this.throwWith(new AppError(downstream.code, downstream.message, {
        status: res.status,
        ...(Number.isFinite(retryAfter) ? { retryAfter } : {}),
      }));
    }
    if (res.status === 503) {
      return this.throwWith(new AppError('UNAVAILABLE', `${this.service} is unavailable: ${downstream?.message ?? 'HTTP 503'}`, { retryAfter: 1 }));
    }
    if (res.status === 504 || downstream?.code === 'DOWNSTREAM_TIMEOUT') {
      return this.throwWith(new AppError('DOWNSTREAM_TIMEOUT', `${what}: ${downstream?.message ?? 'HTTP 504'}`));
    }
    const detail = downstream ? `${downstream.code}: ${downstream.message}` : `HTTP ${res.status}`;
    return this.throwWith(new AppError('DOWNSTREAM_FAILURE', `${what} failed (${detail})`));
  }

  private throwWith(e: AppError): never {
    throw e;
  }
}

/** True when an AppError code means "the downstream is not there", not "your request is bad". */
export const isDownstreamOutage = (e: unknown): boolean =>
  e instanceof AppError && ERROR_CATALOG[e.code] >= 500;
