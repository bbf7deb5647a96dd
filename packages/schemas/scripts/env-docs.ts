// Regenerates the environment-variable tables of the root README and of each service README
// from the config schemas (packages/schemas/test/config-docs.test.ts fails while one is stale).
// Usage: node --conditions=source --import tsx packages/schemas/scripts/env-docs.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { README_FILES, withEnvTables } from './env-table.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
for (const file of README_FILES) {
  const path = join(root, file);
  const before = readFileSync(path, 'utf8');
  const after = withEnvTables(before);
  if (after !== before) writeFileSync(path, after);
  console.log(`${file}: ${after === before ? 'current' : 'updated'}`);
}
