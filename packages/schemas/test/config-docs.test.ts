import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_SCHEMAS, README_FILES, envTableNames, withEnvTables } from '../scripts/env-table.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const read = (f: string) => readFileSync(join(root, f), 'utf8');

describe('configuration documentation', () => {
  it('when the root README is read, then it holds the table of every service', () => {
    assert.deepEqual(envTableNames(read('README.md')).sort(), Object.keys(CONFIG_SCHEMAS).sort());
  });

  for (const svc of Object.keys(CONFIG_SCHEMAS)) {
    it(`when services/${svc}/README.md is read, then it holds its own table`, () => {
      assert.deepEqual(envTableNames(read(`services/${svc}/README.md`)), [svc]);
    });
  }

  for (const file of README_FILES) {
    it(`when ${file} is read, then its env tables are what the schemas generate (names, types, defaults, meanings)`, () => {
      const text = read(file);
      assert.equal(text, withEnvTables(text), `${file} is stale: run node --conditions=source --import tsx packages/schemas/scripts/env-docs.ts`);
    });
  }

  it('when a default in a table differs from its schema, then the check sees it', () => {
    const text = read('README.md');
    const stale = text.replace(/(\| `SERVER_PORT` \| integer 0\.\.65535 \| `)8500(`)/, '$19999$2');
    assert.notEqual(stale, text);
    assert.notEqual(withEnvTables(stale), stale);
  });
});
