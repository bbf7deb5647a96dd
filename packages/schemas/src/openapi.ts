import type { TSchema } from '@sinclair/typebox';
import { ErrorEnvelope } from './common.schemas.js';

export interface RouteDoc {
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  summary: string;
  request?: TSchema;
  /** Query parameters, as an object schema. */
  query?: TSchema;
  /** The route also accepts multipart/form-data with these fields. */
  multipart?: Record<string, { type: 'string'; format?: 'binary' }>;
  response: TSchema;
}

function nameOf(schema: TSchema): string {
  const id = (schema as { $id?: string }).$id ?? 'Anonymous';
  return id.replace(/^.*schemas\.doppel\.dev\//, '').replace(/\.json$/, '').replace(/[^A-Za-z0-9]+/g, '_');
}

/** Strips TypeBox's symbol keys by round-tripping through JSON. */
const plain = (s: TSchema): unknown => JSON.parse(JSON.stringify(s));

/** An OpenAPI 3.1 document whose schemas are the contract schemas themselves. */
export function buildOpenApi(info: { title: string; version: string; description?: string }, routes: RouteDoc[]) {
  const schemas: Record<string, unknown> = { [nameOf(ErrorEnvelope)]: plain(ErrorEnvelope) };
  const ref = (s: TSchema) => {
    const n = nameOf(s);
    schemas[n] = plain(s);
    return { $ref: `#/components/schemas/${n}` };
  };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const op: Record<string, unknown> = {
      summary: r.summary,
      responses: {
        '200': { description: 'Success envelope', content: { 'application/json': { schema: ref(r.response) } } },
        default: { description: 'Error envelope', content: { 'application/json': { schema: ref(ErrorEnvelope) } } },
      },
    };
    if (r.request || r.multipart) {
      const content: Record<string, unknown> = {};
      if (r.request) content['application/json'] = { schema: ref(r.request) };
      if (r.multipart) content['multipart/form-data'] = { schema: { type: 'object', properties: r.multipart } };
      op.requestBody = { required: true, content };
    }
    if (r.query) {
      const q = plain(r.query) as { properties?: Record<string, unknown>; required?: string[] };
      op.parameters = Object.entries(q.properties ?? {}).map(([name, schema]) => ({
        name, in: 'query', required: q.required?.includes(name) ?? false, schema,
      }));
    }
    const p = r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    (paths[p] ??= {})[r.method] = op;
  }
  return { openapi: '3.1.0', info, paths, components: { schemas } };
}
