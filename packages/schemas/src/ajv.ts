import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import type { TSchema, Static } from '@sinclair/typebox';

/**
 * The one Ajv instance of the project. Request validation never coerces or fills
 * defaults: what the client sent is what the handler sees.
 */
export const ajv = new Ajv2020({ allErrors: false, verbose: true, strict: true, strictRequired: false, strictTypes: false, allowUnionTypes: true });

const cache = new WeakMap<object, ValidateFunction>();

export function validatorFor<T extends TSchema>(schema: T): ValidateFunction<Static<T>> {
  let fn = cache.get(schema);
  if (!fn) {
    const id = (schema as { $id?: string }).$id;
    fn = (id && ajv.getSchema(id)) || ajv.compile(schema);
    cache.set(schema, fn);
  }
  return fn as ValidateFunction<Static<T>>;
}

export interface ValidationFailure {
  field: string;
  message: string;
}

/** `/items/3/vec_features` -> `items[3].vec_features`. */
function fieldName(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out || '(body)';
}

/** Turns ajv's first error into one sentence that names the field. */
export function describeErrors(errors: ErrorObject[] | null | undefined): ValidationFailure {
  if (!errors || errors.length === 0) return { field: '(body)', message: 'invalid request' };
  // "Exactly one of" constraints are oneOf over `required`; ajv reports each branch's
  // missing property first, which would name a single field misleadingly.
  const oneOf = errors.find((e) => e.keyword === 'oneOf');
  if (oneOf) {
    const branches = (oneOf.schema as Array<{ required?: string[] }>) ?? [];
    const names = branches.flatMap((b) => b.required ?? []);
    if (names.length === branches.length && names.length > 0) {
      const where = oneOf.instancePath ? `${fieldName(oneOf.instancePath)}: ` : '';
      const passing = (oneOf.params as { passingSchemas?: number[] | null }).passingSchemas;
      const given = passing ? ` (got ${passing.map((i) => names[i]).join(' and ')})` : '';
      return {
        field: fieldName(oneOf.instancePath),
        message: `${where}exactly one of ${names.join(', ')} is required${given}`,
      };
    }
  }
  const e = errors[0]!;
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'required') {
    const f = fieldName(e.instancePath, String(params.missingProperty));
    return { field: f, message: `${f}: is required` };
  }
  if (e.keyword === 'additionalProperties') {
    const f = fieldName(e.instancePath, String(params.additionalProperty));
    return { field: f, message: `${f}: is not allowed` };
  }
  const f = fieldName(e.instancePath);
  let msg = e.message ?? 'is invalid';
  if (e.keyword === 'enum' || e.keyword === 'const') msg = `${msg}: ${JSON.stringify(params.allowedValues ?? params.allowedValue)}`;
  return { field: f, message: `${f}: ${msg}` };
}

export type Validated<T extends TSchema> = { ok: true; value: Static<T> } | { ok: false; error: ValidationFailure };

export function validate<T extends TSchema>(schema: T, data: unknown): Validated<T> {
  const fn = validatorFor(schema);
  if (fn(data)) return { ok: true, value: data as Static<T> };
  return { ok: false, error: describeErrors(fn.errors) };
}
