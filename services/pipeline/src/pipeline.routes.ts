import type { Express } from 'express';
import { DuplicatesRequest, DuplicatesResponse, IMAGE_MULTIPART, IndexRequest, IndexResponse, type RouteDoc } from '@doppel/schemas';
import { admitted, jsonBody, jsonRoute, type Admission } from '@doppel/service-kit';
import { compatDocs, mountCompatRoutes } from './compat/compat.routes.js';
import { findDuplicates, type DuplicatesDeps } from './duplicates.logic.js';
import { IMAGE_FILE, imageRoute, type BodyLimits } from './image-request.parser.js';
import { imagesDocs, mountImagesRoutes } from './images.routes.js';
import type { ImagesDeps } from './images.logic.js';
import { indexImages, type IndexingDeps } from './indexing.logic.js';

export const pipelineDocs: RouteDoc[] = [
  { method: 'post', path: '/duplicates', summary: 'Find the verified duplicates of one image (the older shape of POST /search).', request: DuplicatesRequest, multipart: IMAGE_MULTIPART, response: DuplicatesResponse },
  { method: 'post', path: '/index', summary: 'Index a file, a folder or a list of files under the image root.', request: IndexRequest, response: IndexResponse },
  ...imagesDocs,
  ...compatDocs,
];

export interface PipelineRouteDeps {
  duplicates: DuplicatesDeps;
  indexing: IndexingDeps;
  images: ImagesDeps;
  limits: BodyLimits;
  compatAccuracy: number;
  admissions?: { duplicates?: Admission; index?: Admission };
}

export function mountPipelineRoutes(app: Express, deps: PipelineRouteDeps): void {
  const queries = deps.admissions?.duplicates;
  app.post('/duplicates', ...imageRoute(DuplicatesRequest, deps.limits, IMAGE_FILE, admitted(queries, (body) => findDuplicates(deps.duplicates, body))));
  app.post('/index', jsonBody('1mb'), jsonRoute(IndexRequest, admitted(deps.admissions?.index, (body) => indexImages(deps.indexing, body))));
  mountImagesRoutes(app, deps.images, deps.limits, queries);
  mountCompatRoutes(app, { images: deps.images, indexing: deps.indexing, accuracy: deps.compatAccuracy });
}
