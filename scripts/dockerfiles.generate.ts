/**
 * The four service Dockerfiles from one template (scripts/dockerfile.template): Docker has
 * no include, so what differs per service (summary, port, environment, the matcher's OpenCV
 * runtime libraries, data volumes) is listed here and the rest is written once. The
 * workspace manifests copied before the install come from pnpm-workspace.yaml, so a new
 * package cannot be forgotten. tests/deploy.test.ts fails when a committed Dockerfile is
 * not what this writes.
 *   node --import tsx scripts/dockerfiles.generate.ts          write services/<svc>/Dockerfile
 *   node --import tsx scripts/dockerfiles.generate.ts --check  exit 1 if one differs
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

interface ImageSpec {
  summary: string;
  port: number;
  /** ENV lines of the runtime stage after NODE_ENV and SERVER_PORT (config variables only). */
  env: string[];
  /** Lines run before WORKDIR in the runtime stage. */
  runtime?: string[];
  /** Lines after the copy of /out, before USER (volumes). */
  data?: string[];
}

export const IMAGES: Record<string, ImageSpec> = {
  'image-encoder': {
    summary: 'image -> fingerprint (onnxruntime-node, sharp; both ship prebuilt binaries).',
    port: 8500,
    env: ['IMAGES_ROOT=/data/images MODELS_DIR=/models MODELS_NAME=resnet18.onnx'],
    data: ['# The model is not baked in: mount it (compose: ./models bind mount; k8s: the models volume).', 'VOLUME ["/models"]'],
  },
  'contextual-search': {
    summary: 'the HNSW index (hnswlib-node compiles with node-gyp in the build stage).',
    port: 8800,
    env: ['LOCATION=/data/embeddings'],
    data: [
      '# The index volume is owned by the service user, so a fresh named volume is writable.',
      'RUN mkdir -p /data/embeddings && chown node:node /data/embeddings',
      'VOLUME ["/data/embeddings"]',
    ],
  },
  'instance-matching': {
    summary: "SIFT + RANSAC (opencv4nodejs built against Debian's OpenCV with our patch).",
    port: 8300,
    runtime: [
      '# The OpenCV shared libraries the addon links against (the list lives in setup.sh).',
      'COPY scripts/setup.sh /tmp/setup.sh',
      'RUN bash /tmp/setup.sh --runtime instance-matching && rm /tmp/setup.sh',
    ],
    env: [
      'SOURCE_DIR=/data/source TARGET_DIR=/data/target',
      '# The binding reads these when it loads (else it looks for its own OpenCV build); the',
      "# values are scripts/setup.sh's, which built it against the same Debian OpenCV.",
      'OPENCV4NODEJS_DISABLE_AUTOBUILD=1 OPENCV_INCLUDE_DIR=/usr/include/opencv4 \\\n    OPENCV_LIB_DIR=/usr/lib/x86_64-linux-gnu OPENCV_BIN_DIR=/usr/bin',
    ],
  },
  pipeline: {
    summary: 'encode -> search -> verify (no native addon of its own; sharp ships prebuilt).',
    port: 8000,
    env: ['IMAGES_ROOT=/data/images'],
  },
};

/** Every workspace package folder, from the `packages:` list of pnpm-workspace.yaml (`dir/*` or `dir`). */
export function workspacePackages(): string[] {
  const text = readFileSync(join(root, 'pnpm-workspace.yaml'), 'utf8');
  const list = /^packages:\n((?:\s+-\s+.+\n)+)/m.exec(text)?.[1] ?? '';
  const globs = [...list.matchAll(/-\s+['"]?([^'"\n]+?)['"]?\s*$/gm)].map((m) => m[1]!);
  return globs.flatMap((g) => (g.endsWith('/*') ? readdirSync(join(root, g.slice(0, -2))).map((d) => `${g.slice(0, -2)}/${d}`) : [g]))
    .filter((d) => existsSync(join(root, d, 'package.json'))).sort();
}

/** The Dockerfile of one service, as committed. */
export function renderDockerfile(service: string): string {
  const spec = IMAGES[service];
  if (!spec) throw new Error(`no image spec for ${service} (known: ${Object.keys(IMAGES).join(', ')})`);
  const block = (lines: string[] | undefined) => (lines?.length ? `${lines.join('\n')}\n` : '');
  // Comment lines stay comments; the others become ENV lines.
  const env = [`NODE_ENV=production SERVER_PORT=${spec.port}`, ...spec.env].map((l) => (l.startsWith('#') ? l : `ENV ${l}`));
  const values: Record<string, string> = {
    SERVICE: service,
    SUMMARY: spec.summary,
    MANIFESTS: workspacePackages().map((p) => `COPY ${p}/package.json ${p}/`).join('\n'),
    RUNTIME: block([...(spec.runtime ?? []), ...env]),
    DATA: block(spec.data),
    PORT: String(spec.port),
  };
  const template = readFileSync(join(root, 'scripts', 'dockerfile.template'), 'utf8');
  return template.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    if (!(k in values)) throw new Error(`dockerfile.template: unknown placeholder {{${k}}}`);
    return values[k]!;
  });
}

export const dockerfilePath = (service: string) => join(root, 'services', service, 'Dockerfile');

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const check = process.argv.includes('--check');
  let differs = false;
  for (const svc of Object.keys(IMAGES)) {
    const next = renderDockerfile(svc);
    const now = existsSync(dockerfilePath(svc)) ? readFileSync(dockerfilePath(svc), 'utf8') : '';
    if (next === now) continue;
    differs = true;
    if (check) process.stderr.write(`services/${svc}/Dockerfile differs from scripts/dockerfile.template (run node --import tsx scripts/dockerfiles.generate.ts)\n`);
    else { writeFileSync(dockerfilePath(svc), next); process.stderr.write(`services/${svc}/Dockerfile written\n`); }
  }
  if (check && differs) process.exitCode = 1;
}
