import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EncoderConfig, SearchConfig, MatchingConfig, PipelineConfig } from '../src/index.js';

const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');

describe('configuration documentation', () => {
  for (const [name, schema] of [
    ['image-encoder', EncoderConfig], ['contextual-search', SearchConfig],
    ['instance-matching', MatchingConfig], ['pipeline', PipelineConfig],
  ] as const) {
    it(`when the README is read, then every ${name} variable is documented`, () => {
      const section = readme.split(`#### ${name}`)[1]?.split('####')[0] ?? '';
      for (const v of Object.keys(schema.properties)) assert.match(section, new RegExp(`\\| \`${v}\` \\|`), `${name}: ${v} missing from README (run packages/schemas/scripts/env-docs.ts)`);
    });
  }
});
