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
  /** The body is a form (application/x-www-form-urlencoded or multipart/form-data) with these fields, plus `multipart` files. */
  form?: TSchema;
  response: TSchema;
  /** The error body when it is not the Doppel envelope (drop-in routes speak their system's). */
  error?: TSchema;
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
        default: { description: 'Error envelope', content: { 'application/json': { schema: ref(r.error ?? ErrorEnvelope) } } },
      },
    };
    if (r.request || r.multipart || r.form) {
      const content: Record<string, unknown> = {};
      if (r.request) content['application/json'] = { schema: ref(r.request) };
      if (r.form) {
        content['application/x-www-form-urlencoded'] = { schema: ref(r.form) };
        const fields = (plain(r.form) as { properties?: Record<string, unknown> }).properties ?? {};
        content['multipart/form-data'] = { schema: { type: 'object', properties: { ...fields, ...r.multipart } } };
      } else if (r.multipart) content['multipart/form-data'] = { schema: { type: 'object', properties: r.multipart } };
      op.requestBody = { required: true, content };
    }
    const parameters: unknown[] = [...r.path.matchAll(/:([A-Za-z_]+)/g)].map((m) => ({
      name: m[1], in: 'path', required: true, schema: { type: 'string' },
    }));
    if (r.query) {
      const q = plain(r.query) as { properties?: Record<string, unknown>; required?: string[] };
      parameters.push(...Object.entries(q.properties ?? {}).map(([name, schema]) => ({
        name, in: 'query', required: q.required?.includes(name) ?? false, schema,
      })));
    }
    if (parameters.length > 0) op.parameters = parameters;
    const p = r.path.replace(/:([A-Za-z_]+)/g, '{$1}');
    (paths[p] ??= {})[r.method] = op;
  }
  return { openapi: '3.1.0', info, paths, components: { schemas } };
}
