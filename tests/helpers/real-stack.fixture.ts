import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHARED_MODELS_DIR } from '@doppel/image-encoder/testing';
import { call, freePorts } from '@doppel/service-kit/testing';
import { startStack, type Stack } from '@doppel/cli';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const installed = join(repoRoot, 'models', 'resnet18.onnx');
/** The real fingerprint model: the installed default (whitened when `pnpm models` wrote its fit), else the shared one. */
export const realModelPath = existsSync(installed) ? installed : join(SHARED_MODELS_DIR, 'resnet18-imagenet-layer3.onnx');

/**
 * The four real services as processes on free ports, state under `tmp`, the encoder with
 * `encoderEnv`; then `index/` under the image root is indexed and must count `expectIndexed`.
 */
export async function startIndexedStack(opts: { root: string; tmp: string; encoderEnv: Record<string, string>; expectIndexed: number }): Promise<Stack> {
  const [pipeline, encoder, search, matching] = await freePorts(4);
  const stack = await startStack({
    repoRoot, imagesRoot: opts.root, stateDir: join(opts.tmp, 'state'), modelPath: realModelPath,
    ports: { pipeline: pipeline!, encoder: encoder!, search: search!, matching: matching! },
    env: { 'image-encoder': opts.encoderEnv },
    readyTimeoutMs: 120_000,
  });
  const indexed = await call(stack.urls.pipeline, 'POST', '/index', { relative_path: 'index' });
  assert.equal(indexed.status, 200, JSON.stringify(indexed.body));
  assert.equal(indexed.body.response.indexed, opts.expectIndexed, JSON.stringify(indexed.body));
  return stack;
}

export type Hit = { relative_path: string; score: number; region?: number };

/** Every indexed image for a vector, best first, straight from contextual-search. */
export async function searchEverything(stack: Stack, vec: number[]): Promise<Hit[]> {
  const r = await call(stack.urls['contextual-search'], 'POST', '/search', { vec_features: vec, nb_neighbors: 1000 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.response.neighbors as Hit[];
}

/** The images' other entries (regions, grey entries) contextual-search holds. */
export const regionVectors = async (stack: Stack): Promise<number> => (await call(stack.urls['contextual-search'], 'GET', '/stats')).body.response.region_vectors as number;
