import { Histogram, type Registry } from 'prom-client';
import type { RequestHandler, Request } from 'express';

/** Route template (`/vectors/:id`), never the raw URL, so label cardinality stays bounded. */
export function routeLabel(req: Request): string {
  const path = (req.route as { path?: string } | undefined)?.path;
  return path === undefined ? '(unmatched)' : `${req.baseUrl}${path}`;
}

export function httpMetrics(registry: Registry): RequestHandler {
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route template and status.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  return (req, res, next) => {
    const end = duration.startTimer();
    res.on('finish', () => end({ method: req.method, route: routeLabel(req), status_code: String(res.statusCode) }));
    next();
  };
}
