// The environment-variable tables of the READMEs, generated from the config schemas so the
// documentation cannot drift from what the services accept. Each README holds one table per
// service between `<!-- env-table:NAME -->` and `<!-- /env-table -->`.
import { EncoderConfig, SearchConfig, MatchingConfig, PipelineConfig, type TObject } from '../src/index.js';

export const CONFIG_SCHEMAS: Record<string, TObject> = {
  'image-encoder': EncoderConfig,
  'contextual-search': SearchConfig,
  'instance-matching': MatchingConfig,
  pipeline: PipelineConfig,
};

/** The READMEs holding tables, relative to the repository root. */
export const README_FILES = ['README.md', ...Object.keys(CONFIG_SCHEMAS).map((s) => `services/${s}/README.md`)];

interface Leaf {
  type?: string; anyOf?: Array<{ const?: unknown }>; default?: unknown; description?: string;
  minimum?: number; maximum?: number; exclusiveMinimum?: number;
}

function typeOf(l: Leaf): string {
  if (l.anyOf) return l.anyOf.map((a) => String(a.const)).join(' \\| ');
  const min = l.minimum ?? (l.exclusiveMinimum !== undefined ? `>${l.exclusiveMinimum}` : undefined);
  const range = min !== undefined || l.maximum !== undefined ? ` ${min ?? ''}..${l.maximum ?? ''}` : '';
  return `${l.type ?? 'string'}${range}`;
}

export function envTable(schema: TObject): string {
  const rows = Object.entries(schema.properties as Record<string, Leaf>).map(([k, v]) => {
    const d = v.default === undefined || v.default === '' ? '' : `\`${String(v.default)}\``;
    return `| \`${k}\` | ${typeOf(v)} | ${d} | ${(v.description ?? '').replace(/\|/g, '\\|')} |`;
  });
  return ['| variable | type | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

const BLOCK = /(<!-- env-table:([\w-]+) -->\n)[\s\S]*?(\n<!-- \/env-table -->)/g;

/** The README with every table block regenerated; unknown service names throw. */
export function withEnvTables(readme: string): string {
  return readme.replace(BLOCK, (_all, open: string, name: string, close: string) => {
    const schema = CONFIG_SCHEMAS[name];
    if (!schema) throw new Error(`env-table: no config schema named ${name}`);
    return `${open}${envTable(schema)}${close}`;
  });
}

/** Service names whose table blocks the README holds. */
export const envTableNames = (readme: string): string[] => [...readme.matchAll(BLOCK)].map((m) => m[2]!);
