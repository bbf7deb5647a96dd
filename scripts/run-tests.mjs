#!/usr/bin/env node
// Runs node's test runner over TypeScript test files (Node 20's --test takes no globs).
// Usage: node scripts/run-tests.mjs [dir ...]   (default: every package, service and tests/)
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const dirs = args.length ? args.map((a) => resolve(root, a)) : ['packages', 'services', 'tests'].map((d) => join(root, d));

function walk(dir, out) {
  let entries;
  try { entries = readdirSync(dir); } catch { return out; }
  for (const name of entries) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

const files = dirs.flatMap((d) => walk(d, [])).sort();
if (files.length === 0) {
  console.error('no test files found under', dirs.map((d) => relative(root, d)).join(', '));
  process.exit(1);
}
// The tests load the OpenCV binding in-process, and it reads its build settings from the
// environment when it loads: take them from setup.sh (the one place that knows them) for
// the test processes, unless the caller set them.
const opencvEnv = JSON.parse(spawnSync('bash', [join(root, 'scripts', 'setup.sh'), '--print-env'], { encoding: 'utf8' }).stdout);
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
const r = spawnSync(
  process.execPath,
  ['--conditions=source', '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files],
  { stdio: 'inherit', cwd: root, env: { ...opencvEnv, ...process.env, DOPPEL_REPO_ROOT: root } },
);
process.exit(r.status ?? 1);
