import { validate, type TSchema, type Static } from '@doppel/schemas';

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`invalid configuration: ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

interface LeafSchema { type?: string; anyOf?: LeafSchema[]; const?: unknown; default?: unknown }

function coerce(name: string, raw: string, schema: LeafSchema): unknown {
  const type = schema.type ?? (schema.anyOf ? typeof schema.anyOf[0]?.const : undefined);
  switch (type) {
    case 'integer':
    case 'number': {
      const n = raw.trim() === '' ? NaN : Number(raw);
      if (!Number.isFinite(n)) throw new ConfigError(name, `expected a number, got ${JSON.stringify(raw)}`);
      return n;
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off', ''].includes(v)) return false;
      throw new ConfigError(name, `expected true or false, got ${JSON.stringify(raw)}`);
    }
    default:
      return raw;
  }
}

/**
 * Reads the variables a config schema names from `env`, coerces them from strings,
 * fills defaults and validates. Called once at start; the result is frozen.
 */
export function loadConfig<S extends TSchema>(schema: S, env: Record<string, string | undefined> = process.env): Readonly<Static<S>> {
  const props = (schema as unknown as { properties: Record<string, LeafSchema> }).properties;
  const out: Record<string, unknown> = {};
  for (const [name, leaf] of Object.entries(props)) {
    const raw = env[name];
    if (raw === undefined) {
      if (leaf.default !== undefined) out[name] = leaf.default;
      continue;
    }
    out[name] = coerce(name, raw, leaf);
  }
  const result = validate(schema, out);
  if (!result.ok) throw new ConfigError(result.error.field, result.error.message.replace(/^[^:]+: /, ''));
  return Object.freeze(result.value);
}

/** The env-var names a config schema accepts (used by deployment checks). */
export const configVariables = (schema: TSchema): string[] =>
  Object.keys((schema as unknown as { properties: Record<string, unknown> }).properties);
