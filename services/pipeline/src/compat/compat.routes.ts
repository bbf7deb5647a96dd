import type { Express } from 'express';
import type { RouteDoc } from '@doppel/schemas';
import type { ImagesDeps } from '../images.logic.js';
import type { IndexingDeps } from '../indexing.logic.js';
import { imageMatchingDocs, mountImageMatchingRoutes } from './image-matching.routes.js';
import { imageSearchDocs, mountImageSearchRoutes } from './image-search.routes.js';
import { imagenetFeatureDocs, mountImagenetFeatureRoutes } from './imagenet-feature.routes.js';
import { matchDocs, mountMatchRoutes } from './match.routes.js';

/** The four drop-in prefixes: thin adapters over the pipeline's own logic. */
export const compatDocs: RouteDoc[] = [...matchDocs, ...imageMatchingDocs, ...imageSearchDocs, ...imagenetFeatureDocs];

export function mountCompatRoutes(app: Express, deps: { images: ImagesDeps; indexing: IndexingDeps; accuracy: number }): void {
  mountMatchRoutes(app, deps.images);
  mountImageMatchingRoutes(app, deps.images, deps.accuracy);
  mountImageSearchRoutes(app, deps.images, deps.indexing);
  mountImagenetFeatureRoutes(app, deps.images);
}
