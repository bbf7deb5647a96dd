/** Shared set-up of the encoder tests: the real app on port 0 with the generated model. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { EncoderConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { listen } from '@doppel/service-kit/testing';
import { buildService } from '../src/app.js';
import type { EncoderModel } from '../src/onnx.model.js';
import { ensureTestModel } from '../src/testing.js';

export interface TestEncoder {
  base: string;
  model: EncoderModel;
  close(): Promise<void>;
}

/** The service as main.ts builds it, on port 0, with the generated model and one intra-op thread. */
export async function startEncoder(env: Record<string, string> = {}, modelPath = ensureTestModel()): Promise<TestEncoder> {
  const config = loadConfig(EncoderConfig, { LOG_LEVEL: 'silent', MODEL_PATH: modelPath, INTRA_OP_THREADS: '1', ...env });
  const service = await buildService(config, { checkResponses: true });
  const { base, close } = await listen(service);
  return { base, model: service.model, close };
}

export const tempDir = (prefix = 'doppel-enc-') => mkdtempSync(join(tmpdir(), prefix));

/** A deterministic test picture: gradients, stripes and an off-centre block (not symmetric). */
export function pattern(width: number, height: number, seed = 1): Buffer {
  const px = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const block = x > width * 0.15 && x < width * 0.45 && y > height * 0.1 && y < height * 0.35;
      px[i] = block ? 250 : (x * 255) / width;
      px[i + 1] = ((Math.sin((x + seed * 7) / (4 + seed)) + 1) * 100 + (y * 50) / height) | 0;
      px[i + 2] = ((x * y * seed) % 255) * (y > height * 0.7 ? 1 : 0.3);
    }
  }
  return px;
}

export const drawPng = (w: number, h: number, seed = 1) => sharp(pattern(w, h, seed), { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
export const drawJpeg = (w: number, h: number, seed = 1) => sharp(pattern(w, h, seed), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 92 }).toBuffer();

export const cosine = (a: number[], b: number[]) => {
  let d = 0; let na = 0; let nb = 0;
  for (let i = 0; i < a.length; i++) { d += a[i]! * b[i]!; na += a[i]! * a[i]!; nb += b[i]! * b[i]!; }
  return d / Math.sqrt(na * nb);
};
export const norm = (a: number[]) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));
