import type { Express } from 'express';
import {
  GetImagenetFeatureQuery, ImagenetFeatureResponse, SaveAllImageInfoRequest, SaveImagenetFeatureRequest, SaveResultText,
  type RouteDoc,
} from '@doppel/schemas';
import { errorBody, jsonBody, parseQuery } from '@doppel/service-kit';
import { addImage, fingerprint, type ImagesDeps } from '../images.logic.js';
import { answer, compatRouter, validJson } from './compat.kit.js';

/*
 * /compat/imagenet-feature: the feature server of a shopping catalogue. Saving answers the
 * index operation's result as text ("created" or "updated"), as the original passes on
 * Elasticsearch's. The original has no error shape of its own (a Flask error page), so
 * errors are the Doppel envelope.
 */
export const IMAGENET_PREFIX = '/compat/imagenet-feature';

export const imagenetFeatureDocs: RouteDoc[] = [
  { method: 'post', path: `${IMAGENET_PREFIX}/saveImagenetFeature`, summary: 'imagenet-feature: download img_url, encode, store under item_id (text "created" or "updated").', request: SaveImagenetFeatureRequest, response: SaveResultText },
  { method: 'post', path: `${IMAGENET_PREFIX}/saveAllImageInfo`, summary: 'imagenet-feature: the same, keeping item_name, category_id and img_url as metadata.', request: SaveAllImageInfoRequest, response: SaveResultText },
  { method: 'get', path: `${IMAGENET_PREFIX}/getImagenetFeature`, summary: 'imagenet-feature: the fingerprint of img_url, not stored.', query: GetImagenetFeatureQuery, response: ImagenetFeatureResponse },
];

export function mountImagenetFeatureRoutes(app: Express, deps: ImagesDeps): void {
  const { router, seal } = compatRouter((e) => errorBody(e.code, e.message));
  const body = jsonBody('64kb');

  router.post('/saveImagenetFeature', body, answer(async (req) => {
    const r = validJson(SaveImagenetFeatureRequest, req.body);
    const id = String(r.item_id);
    // The original only sets the feature of an existing item: what the item already carries stays.
    const kept = (await deps.records.get(id))?.metadata;
    const out = await addImage(deps, { id, url: r.img_url, ...(kept ? { metadata: kept } : {}) });
    return out.replaced ? 'updated' : 'created';
  }));
  router.post('/saveAllImageInfo', body, answer(async (req) => {
    const r = validJson(SaveAllImageInfoRequest, req.body);
    const out = await addImage(deps, {
      id: String(r.item_id),
      url: r.img_url,
      metadata: { item_id: r.item_id, item_name: r.item_name, category_id: r.category_id, img_url: r.img_url, register_time: new Date().toISOString() },
    });
    return out.replaced ? 'updated' : 'created';
  }));
  router.get('/getImagenetFeature', answer(async (req) => {
    const q = parseQuery(GetImagenetFeatureQuery, req.query);
    return { imagenet_feature: (await fingerprint(deps, { url: q.img_url, orientations: 'none' })).fingerprint };
  }));
  seal();
  app.use(IMAGENET_PREFIX, router);
}
