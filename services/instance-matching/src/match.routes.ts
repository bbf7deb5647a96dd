import type { Express } from 'express';
import { admitted, clientGoneSignal, jsonBody, jsonRoute, type Admission } from '@doppel/service-kit';
import { CompareRequest, CompareResponse, MatchRequest, MatchResponse, PrepareRequest, PrepareResponse, type RouteDoc } from '@doppel/schemas';
import type { Matcher } from './match.service.js';

/** base64 images are capped by the schema at 40 MiB of text; leave room for the JSON around them. */
const BODY_LIMIT = '90mb';

export const matchDocs: RouteDoc[] = [
  { method: 'post', path: '/match', summary: 'Verify a candidate against neighbour images (SIFT + RANSAC, dense check for low texture).', request: MatchRequest, response: MatchResponse },
  { method: 'post', path: '/prepare', summary: 'Extract a query candidate\'s features ahead of /match; answers a short-lived candidate_handle.', request: PrepareRequest, response: PrepareResponse },
  { method: 'post', path: '/compare', summary: 'Verify one candidate/target pair.', request: CompareRequest, response: CompareResponse },
];

export function matchRoutes(app: Express, matcher: Matcher, admission?: Admission): void {
  app.post('/match', jsonBody(BODY_LIMIT), jsonRoute(MatchRequest, admitted(admission, (body, { log, res }) => matcher.match(body, log, clientGoneSignal(res)))));
  app.post('/prepare', jsonBody(BODY_LIMIT), jsonRoute(PrepareRequest, admitted(admission, (body) => matcher.prepare(body))));
  app.post('/compare', jsonBody(BODY_LIMIT), jsonRoute(CompareRequest, admitted(admission, (body) => matcher.compare(body))));
}
