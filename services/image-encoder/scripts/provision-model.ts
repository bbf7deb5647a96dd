/**
 * `pnpm models`: installs the default fingerprint model at <repo>/models/resnet18.onnx.
 *   from a local mirror (default ../shared/models next to the repo), or
 *   MODEL_URL=https://... MODEL_SHA256=<hex> pnpm models   (connected machines)
 * Options (flags or env): --mirror/MODEL_MIRROR_DIR, --url/MODEL_URL, --sha256/MODEL_SHA256,
 * --file/MODEL_FILE (name in the mirror), --dest/MODEL_DEST.
 * Then the model's whitening fit beside it (`x.pca.json`, src/whitening.provisioner.ts: two
 * Debian packages of images, `apt-get download` + `dpkg -x`, encoded and fitted; a few
 * minutes, skipped when a fit for this model is there): --refit-whitening fits again,
 * --skip-whitening/MODEL_WHITENING=skip leaves it out (the encoder then runs unwhitened).
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { EncoderConfig } from '@doppel/schemas';
import { loadConfig } from '@doppel/service-kit';
import { DEFAULT_MODEL, provisionModel } from '../src/model.provisioner.js';
import { provisionWhitening } from '../src/whitening.provisioner.js';

const repo = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const { values } = parseArgs({
  options: {
    mirror: { type: 'string' }, url: { type: 'string' }, sha256: { type: 'string' },
    file: { type: 'string' }, dest: { type: 'string' },
    'skip-whitening': { type: 'boolean', default: false }, 'refit-whitening': { type: 'boolean', default: false },
  },
});
const env = process.env;
const dest = resolve(values.dest ?? env.MODEL_DEST ?? resolve(repo, 'models', DEFAULT_MODEL.installName));
const url = values.url ?? env.MODEL_URL;
const custom = url !== undefined || values.file !== undefined || env.MODEL_FILE !== undefined;
const sha256 = values.sha256 ?? env.MODEL_SHA256 ?? (custom ? undefined : DEFAULT_MODEL.sha256);
if (!sha256) {
  process.stderr.write('provision-model: a sha256 is required with a custom model (--sha256 or MODEL_SHA256)\n');
  process.exit(2);
}
try {
  const r = await provisionModel({
    dest, sha256, url,
    mirrorDir: resolve(values.mirror ?? env.MODEL_MIRROR_DIR ?? resolve(repo, '..', 'shared', 'models')),
    fileName: values.file ?? env.MODEL_FILE ?? DEFAULT_MODEL.fileName,
  });
  process.stdout.write(`model ${r.source === 'existing' ? 'already present' : `installed from ${r.source}`}: ${r.path} (sha256 ${r.sha256})\n`);
  if (values['skip-whitening'] || env.MODEL_WHITENING === 'skip') {
    process.stdout.write('whitening fit skipped: the encoder runs with plain fingerprints (lower candidate recall in large collections)\n');
  } else {
    const config = loadConfig(EncoderConfig, { ...env, MODEL_PATH: dest, LOG_LEVEL: 'warn' });
    const w = await provisionWhitening({ config, modelPath: dest, refit: values['refit-whitening'], log: (l) => process.stdout.write(`${l}\n`) });
    process.stdout.write(w.source === 'existing'
      ? `whitening fit already present for this model: ${w.path}\n`
      : `whitening fit written: ${w.path} (${w.images} images, ${w.seconds!.toFixed(0)} s in all)\n`);
  }
} catch (e) {
  process.stderr.write(`provision-model: ${(e as Error).message}\n`);
  process.exit(1);
}
