import * as schemas from '@doppel/schemas';
import type { TSchema } from '@doppel/schemas';
import type { Endpoint } from './malformed.arbitraries.js';
import type { Service, ServiceName } from './services.fixture.js';

/*
 * Every public endpoint of a running service, read from its own /openapi.json (so a new
 * route is fuzzed, or fails the suite until it has a template), plus the kit's health,
 * readiness, metrics and OpenAPI routes. A template is one valid request per operation,
 * on the fuzz suite's image root (img-0.jpg, sub/img-1.jpg, sub/img-2.jpg).
 */
export interface FuzzTarget extends Endpoint {
  /** The schema of a 2xx body and of an error body, from the OpenAPI document (undefined: not JSON). */
  ok?: TSchema;
  error: TSchema;
}

type Template = Omit<Endpoint, 'service' | 'method' | 'path' | 'files'>;

/** Valid requests, by service and `METHOD /path` (OpenAPI form). */
export function templates(dimension: number): Record<ServiceName, Record<string, Template>> {
  const v = Array.from({ length: dimension }, (_, i) => Math.sin(i));
  const image = { relative_path: 'img-0.jpg' };
  const noUrl = 'http://127.0.0.1:1/x.jpg';
  return {
    'image-encoder': {
      'POST /encode': { json: { ...image, orientations: 'none' } },
      'POST /encode/batch': { json: { items: [image] } },
    },
    'contextual-search': {
      'POST /search': { json: { nb_neighbors: 3, vec_features: v, min_score: 0.1 } },
      'POST /search/batch': { json: { queries: [{ vec_features: v }], nb_neighbors: 3 } },
      'POST /vectors': { json: { items: [{ relative_path: 'fuzz/x.jpg', vec_features: v, metadata: { a: 1 } }] } },
      'DELETE /vectors': { json: { relative_paths: ['fuzz/x.jpg'] } },
      'POST /vectors/lookup': { json: { relative_paths: ['fuzz/x.jpg', 'fuzz/none.jpg'] } },
      'GET /vectors': { query: { offset: 0, limit: 10, include_vectors: true } },
    },
    'instance-matching': {
      'POST /match': { json: { candidate: 'img-0.jpg', neighbors: ['sub/img-1.jpg'], threshold: 0.5 } },
      'POST /prepare': { json: { candidate: 'img-0.jpg' } },
      'POST /compare': { json: { candidate: 'img-0.jpg', target: 'sub/img-1.jpg' } },
    },
    pipeline: {
      'POST /duplicates': { json: image },
      'POST /index': { json: { relative_path: 'sub', recursive: true } },
      'POST /images': { json: { ...image, id: 'fuzz-1', metadata: { a: 1 } } },
      'GET /images': { query: { offset: 0, limit: 10 } },
      'GET /images/{id}': { params: { id: 'img-0.jpg' } },
      'DELETE /images/{id}': { params: { id: 'fuzz-1' } },
      'POST /search': { json: { ...image, nb_neighbors: 3 } },
      'POST /search/vector': { json: { vec_features: v, nb_neighbors: 3 } },
      'POST /compare': { json: { image1: image, image2: { relative_path: 'sub/img-1.jpg' } } },
      'POST /fingerprint': { json: image },
      'POST /compat/match/add': { form: { filepath: 'fuzz/a.jpg', metadata: '{"a":1}' } },
      'DELETE /compat/match/delete': { form: { filepath: 'fuzz/a.jpg' } },
      'POST /compat/match/search': { form: { all_orientations: 'false' } },
      'POST /compat/match/compare': { form: { url1: noUrl, url2: noUrl } },
      'GET /compat/match/list': { query: { offset: 0, limit: 20 } },
      'POST /compat/image-matching': { json: { type: 'get_feature_filename', image: 'img-0.jpg' } },
      'POST /compat/image-matching/image_service/v1.0': { json: { type: 'match_filename', image: 'img-0.jpg', accuracy: 0.5 } },
      'GET /compat/image-search/add': { query: { image: 'img-0.jpg' } },
      'GET /compat/image-search/search': { query: { image: 'img-0.jpg', limit: 5 } },
      'POST /compat/imagenet-feature/saveImagenetFeature': { json: { item_id: 'x', img_url: noUrl } },
      'POST /compat/imagenet-feature/saveAllImageInfo': { json: { item_id: 'x', item_name: 'n', category_id: 1, img_url: noUrl } },
      'GET /compat/imagenet-feature/getImagenetFeature': { query: { img_url: noUrl } },
    },
  };
}

/** The kit's routes on every service, and undocumented probes of one (no input to validate: random queries only). */
const KIT_ROUTES = ['/healthz', '/readyz', '/metrics', '/openapi.json'];
const PROBES: Partial<Record<ServiceName, string[]>> = { pipeline: ['/health/downstream'] };

interface OpenApiOp {
  requestBody?: { content: Record<string, { schema?: { properties?: Record<string, { format?: string }> } }> };
  parameters?: Array<{ in: string; name: string }>;
  responses: Record<string, { content?: Record<string, { schema?: { $ref?: string } }> }>;
}
interface OpenApiDoc {
  paths: Record<string, Record<string, OpenApiOp>>;
  components: { schemas: Record<string, { $id?: string }> };
}

/** The contract's schemas by $id: replies are validated with the same objects the services use. */
const byId = new Map<string, TSchema>(
  Object.values(schemas).filter((s): s is TSchema => typeof s === 'object' && s !== null && typeof (s as { $id?: unknown }).$id === 'string')
    .map((s) => [(s as { $id: string }).$id, s]),
);

function schemaOf(doc: OpenApiDoc, ref: string | undefined): TSchema | undefined {
  if (!ref) return undefined;
  const id = doc.components.schemas[ref.replace('#/components/schemas/', '')]?.$id;
  return id ? byId.get(id) : undefined;
}

/** The fuzz targets of one running service; throws naming any documented operation without a template. */
export async function fuzzTargets(svc: Service, dimension: number): Promise<FuzzTarget[]> {
  const doc = await (await fetch(`${svc.base}/openapi.json`)).json() as OpenApiDoc;
  const mine = templates(dimension)[svc.name];
  const out: FuzzTarget[] = [];
  const missing: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const key = `${method.toUpperCase()} ${path}`;
      const needsInput = op.requestBody !== undefined || (op.parameters?.length ?? 0) > 0;
      const t = mine[key];
      if (needsInput && !t) {
        missing.push(key);
        continue;
      }
      const mp = op.requestBody?.content['multipart/form-data']?.schema?.properties ?? {};
      const files = Object.entries(mp).filter(([, p]) => p.format === 'binary').map(([n]) => n);
      const ok = schemaOf(doc, op.responses['200']?.content?.['application/json']?.schema?.$ref);
      const error = schemaOf(doc, op.responses.default?.content?.['application/json']?.schema?.$ref) ?? schemas.ErrorEnvelope;
      out.push({ service: svc.name, method: method.toUpperCase() as Endpoint['method'], path, ...t, ...(files.length ? { files } : {}), ...(ok ? { ok } : {}), error });
    }
  }
  const unused = Object.keys(mine).filter((k) => !out.some((e) => `${e.method} ${e.path}` === k));
  if (missing.length || unused.length) {
    throw new Error(`${svc.name}: fuzz templates out of date with /openapi.json: no template for ${missing.join(', ') || '-'}; templates of no operation: ${unused.join(', ') || '-'}`);
  }
  for (const path of [...KIT_ROUTES, ...(PROBES[svc.name] ?? [])]) out.push({ service: svc.name, method: 'GET', path, error: schemas.ErrorEnvelope });
  return out;
}
