import type { Express } from 'express';
import type { Registry } from 'prom-client';
import type { Logger } from './logger.js';

/**
 * What each service's `buildService(config, deps?)` returns: the app (never listening)
 * and one close() that releases everything the service itself created.
 */
export interface Service {
  app: Express;
  /** Work that must run after the port is open, e.g. loading an index while /readyz says 503. */
  start?: () => Promise<void>;
  close(): Promise<void>;
}

/** The optional dependencies every buildService accepts; each service adds its own. */
export interface ServiceDeps {
  registry?: Registry;
  logger?: Logger;
  /** Test mode: every response is validated against its route's response schema (a mismatch is a 500). */
  checkResponses?: boolean;
}
