// Prints the README's environment-variable tables from the config schemas, so the
// documentation cannot drift from what the services accept.
// Usage: node --conditions=source --import tsx packages/schemas/scripts/env-docs.ts
import { EncoderConfig, SearchConfig, MatchingConfig, PipelineConfig, type TObject } from '../src/index.js';

const services: Array<[string, TObject]> = [
  ['image-encoder', EncoderConfig],
  ['contextual-search', SearchConfig],
  ['instance-matching', MatchingConfig],
  ['pipeline', PipelineConfig],
];

interface Leaf { type?: string; anyOf?: Array<{ const?: unknown }>; default?: unknown; description?: string; minimum?: number; maximum?: number }

function typeOf(l: Leaf): string {
  if (l.anyOf) return l.anyOf.map((a) => String(a.const)).join(' \\| ');
  const range = l.minimum !== undefined || l.maximum !== undefined ? ` ${l.minimum ?? ''}..${l.maximum ?? ''}` : '';
  return `${l.type ?? 'string'}${range}`;
}

for (const [name, schema] of services) {
  console.log(`#### ${name}\n`);
  console.log('| variable | type | default | meaning |');
  console.log('| --- | --- | --- | --- |');
  for (const [k, v] of Object.entries(schema.properties as Record<string, Leaf>)) {
    const d = v.default === undefined || v.default === '' ? '' : `\`${String(v.default)}\``;
    console.log(`| \`${k}\` | ${typeOf(v)} | ${d} | ${v.description ?? ''} |`);
  }
  console.log('');
}
