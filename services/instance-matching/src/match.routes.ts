import type { Express, Response } from 'express';
import { jsonBody, jsonRoute } from '@doppel/service-kit';
import { CompareRequest, CompareResponse, MatchRequest, MatchResponse, type RouteDoc } from '@doppel/schemas';
import type { Matcher } from './match.service.js';

/** base64 images are capped by the schema at 40 MiB of text; leave room for the JSON around them. */
const BODY_LIMIT = '90mb';

export const matchDocs: RouteDoc[] = [
  { method: 'post', path: '/match', summary: 'Verify a candidate against neighbour images (SIFT + RANSAC, dense check for low texture).', request: MatchRequest, response: MatchResponse },
  { method: 'post', path: '/compare', summary: 'Verify one candidate/target pair.', request: CompareRequest, response: CompareResponse },
];

/** Aborts when the connection closes before the answer was sent: the caller is gone. */
function callerGone(res: Response): AbortSignal {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  return ac.signal;
}

export function matchRoutes(app: Express, matcher: Matcher): void {
  app.post('/match', jsonBody(BODY_LIMIT), jsonRoute(MatchRequest, (body, { log, res }) => matcher.match(body, log, callerGone(res))));
  app.post('/compare', jsonBody(BODY_LIMIT), jsonRoute(CompareRequest, (body) => matcher.compare(body)));
}
