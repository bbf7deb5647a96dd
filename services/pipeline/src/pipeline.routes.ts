import type { Express } from 'express';
import { DuplicatesRequest, DuplicatesResponse, IndexRequest, IndexResponse, type RouteDoc } from '@doppel/schemas';
import { admitted, jsonBody, jsonRoute, type Admission } from '@doppel/service-kit';
import { findDuplicates, type DuplicatesDeps } from './duplicates.logic.js';
import { indexImages, type IndexingDeps } from './indexing.logic.js';

export const pipelineDocs: RouteDoc[] = [
  { method: 'post', path: '/duplicates', summary: 'Find the verified duplicates of one image.', request: DuplicatesRequest, response: DuplicatesResponse },
  { method: 'post', path: '/index', summary: 'Index a file, a folder or a list of files under the image root.', request: IndexRequest, response: IndexResponse },
];

export function mountPipelineRoutes(
  app: Express,
  deps: { duplicates: DuplicatesDeps; indexing: IndexingDeps; admissions?: { duplicates?: Admission; index?: Admission } },
): void {
  // base64 images ride in the body: the limit follows the schema's 40 MiB string cap.
  app.post('/duplicates', jsonBody('41mb'), jsonRoute(DuplicatesRequest, admitted(deps.admissions?.duplicates, (body) => findDuplicates(deps.duplicates, body))));
  app.post('/index', jsonBody('1mb'), jsonRoute(IndexRequest, admitted(deps.admissions?.index, (body) => indexImages(deps.indexing, body))));
}
