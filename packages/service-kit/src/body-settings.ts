import type { Request } from 'express';
import { BodyBudget } from './request-body.reader.js';

/** What every body parser of one app shares: the body deadline and the in-flight budget. */
export interface BodySettings {
  timeoutMs: number;
  budget: BodyBudget;
}

const KEY = 'doppelBody';
const fallback: BodySettings = { timeoutMs: 30_000, budget: new BodyBudget(256 * 1024 * 1024) };

/** Stored in app.locals by createServiceApp, so route-level parsers need no wiring. */
export function setBodySettings(locals: Record<string, unknown>, s: BodySettings): void {
  locals[KEY] = s;
}

export function bodySettingsOf(req: Request): BodySettings {
  return ((req.app?.locals as Record<string, unknown> | undefined)?.[KEY] as BodySettings | undefined) ?? fallback;
}
