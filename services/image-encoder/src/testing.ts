/**
 * Test helpers of the encoder, for this package's tests and the e2e tests of others.
 * Kept out of the main entry so production code never imports them.
 */
import { mkdirSync, existsSync, writeFileSync, renameSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTestModel, type TestModelOptions } from './test-model.builder.js';

export type { TestModelOptions };

/** Repository root, from this file's location so it works from any cwd (src/ or dist/). */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** Bumped when the generator changes, so cached files of an older generator are not reused. */
const GENERATOR_VERSION = 1;

/**
 * Path of the small generated ResNet-shaped ONNX model, built once and cached under
 * <repo>/.doppel/models/. Safe to call from concurrent test processes: the file is
 * written to a unique temporary name and renamed into place.
 */
export function ensureTestModel(opts: TestModelOptions & { dir?: string } = {}): string {
  const { dir = join(REPO_ROOT, '.doppel', 'models'), ...modelOpts } = opts;
  const key = JSON.stringify({ v: GENERATOR_VERSION, s: modelOpts.inputSize ?? 64, c: modelOpts.classifierClasses ?? 0, seed: modelOpts.seed ?? 1234 });
  const name = `test-resnet-${createHash('sha256').update(key).digest('hex').slice(0, 12)}.onnx`;
  const file = join(dir, name);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  writeFileSync(tmp, buildTestModel(modelOpts));
  renameSync(tmp, file);
  return file;
}

/** The real models shared next to the repo (../shared/models), when present. */
export const SHARED_MODELS_DIR = resolve(REPO_ROOT, '..', 'shared', 'models');
