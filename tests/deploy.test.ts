import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { EncoderConfig, MatchingConfig, PipelineConfig, SearchConfig, type TObject } from '@doppel/schemas';
import { configVariables } from '@doppel/service-kit';

/* Static checks of the deployment files: nothing here needs Docker or a cluster. */
const root = fileURLToPath(new URL('..', import.meta.url));
const read = (p: string) => readFileSync(join(root, p), 'utf8');

const SERVICES: Record<string, { schema: TObject; port: number }> = {
  'image-encoder': { schema: EncoderConfig, port: 8500 },
  'contextual-search': { schema: SearchConfig, port: 8800 },
  'instance-matching': { schema: MatchingConfig, port: 8300 },
  pipeline: { schema: PipelineConfig, port: 8000 },
};
const STATELESS = ['image-encoder', 'instance-matching', 'pipeline'];

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function unknownVars(service: string, names: string[]): string[] {
  const known = new Set(configVariables(SERVICES[service]!.schema));
  return names.filter((n) => !known.has(n));
}

describe('Dockerfiles', () => {
  for (const svc of Object.keys(SERVICES)) {
    it(`when services/${svc}/Dockerfile is read, then it is multi-stage, non-root and runs the compiled entry`, () => {
      const text = read(`services/${svc}/Dockerfile`);
      const froms = text.match(/^FROM\s+\S+(\s+AS\s+\S+)?/gim) ?? [];
      assert.ok(froms.length >= 2, 'at least two stages');
      assert.match(text, /^COPY --from=build/m);
      const users = [...text.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
      assert.ok(users.length > 0, 'has USER');
      assert.notEqual(users.at(-1), 'root');
      assert.notEqual(users.at(-1), '0');
      assert.match(text, /pnpm install --frozen-lockfile/);
      assert.match(text, new RegExp(`EXPOSE ${SERVICES[svc]!.port}`));
      assert.match(text, /CMD \["node", "dist\/main\.js"\]/);
    });
  }

  it('when the instance-matching image is read, then it installs the OpenCV runtime libraries', () => {
    const text = read('services/instance-matching/Dockerfile');
    const runtime = text.split(/^FROM .* AS runtime/m)[1] ?? '';
    for (const lib of ['core', 'imgproc', 'imgcodecs', 'features2d', 'calib3d', 'flann']) assert.match(runtime, new RegExp(`libopencv-${lib}406`));
  });

  it('when the image-encoder image is read, then the model comes from a volume, not the image', () => {
    const text = read('services/image-encoder/Dockerfile');
    assert.match(text, /VOLUME \["\/models"\]/);
    assert.doesNotMatch(text, /COPY[^\n]*\.onnx/);
  });

  it('when .dockerignore is read, then dependencies, state and models stay out of the context', () => {
    const lines = read('.dockerignore').split('\n').map((l) => l.trim());
    for (const p of ['**/node_modules', '.git', '.doppel', 'models']) assert.ok(lines.includes(p), p);
  });
});

describe('docker-compose.yml', () => {
  // Compose merges the `<<: *hardening` anchor; YAML 1.2 needs merge keys switched on.
  const compose = obj(parse(read('docker-compose.yml'), { merge: true }));
  const services = obj(compose.services);

  it('when parsed, then it wires the four services with the reference volumes', () => {
    // Services behind a profile (pgvector) are extras, checked in deploy-pgvector.test.ts.
    assert.deepEqual(Object.keys(services).filter((n) => obj(services[n]).profiles === undefined).sort(), Object.keys(SERVICES).sort());
    for (const v of ['embeddings', 'images', 'models']) assert.ok(v in obj(compose.volumes), v);
    const mounts = (svc: string) => arr(obj(services[svc]).volumes).map(String);
    assert.ok(mounts('image-encoder').some((m) => m.startsWith('models:/models')));
    assert.ok(mounts('image-encoder').some((m) => m.startsWith('images:')));
    assert.ok(mounts('contextual-search').some((m) => m.startsWith('embeddings:')));
    assert.ok(mounts('instance-matching').some((m) => m.startsWith('images:/data/source')));
    assert.ok(mounts('instance-matching').some((m) => m.startsWith('images:/data/target')));
  });

  for (const svc of Object.keys(SERVICES)) {
    it(`when ${svc} is read, then its env vars exist in its config schema and it is hardened and health-checked`, () => {
      const s = obj(services[svc]);
      const env = obj(s.environment);
      assert.deepEqual(unknownVars(svc, Object.keys(env)), []);
      assert.equal(env.SERVER_PORT, String(SERVICES[svc]!.port));
      assert.ok(arr(s.ports).map(String).includes(`${SERVICES[svc]!.port}:${SERVICES[svc]!.port}`));
      assert.equal(s.read_only, true);
      assert.match(String(s.user), /^[1-9]\d*:/);
      assert.ok(arr(s.tmpfs).includes('/tmp'));
      const hc = obj(s.healthcheck);
      assert.ok(arr(hc.test).join(' ').includes(`${SERVICES[svc]!.port}/readyz`));
      assert.equal(obj(s.build).dockerfile, `services/${svc}/Dockerfile`);
    });
  }

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
    it(`when k8s/${svc}.yaml is read, then it is probed, limited, non-root, read-only and configured from its schema`, () => {
      const docs = docsOf(`${svc}.yaml`);
      const kinds = docs.map((d) => d.kind);
      const stateful = svc === 'contextual-search';
      assert.ok(kinds.includes('ConfigMap') && kinds.includes('Service'));
      assert.ok(kinds.includes(stateful ? 'StatefulSet' : 'Deployment'));
      assert.equal(kinds.includes('HorizontalPodAutoscaler'), STATELESS.includes(svc));

      const cm = docs.find((d) => d.kind === 'ConfigMap')!;
      const data = obj(cm.data);
      assert.deepEqual(unknownVars(svc, Object.keys(data)), []);
      assert.equal(data.SERVER_PORT, String(SERVICES[svc]!.port));

      const workload = docs.find((d) => d.kind === (stateful ? 'StatefulSet' : 'Deployment'))!;
      const spec = obj(obj(obj(workload.spec).template).spec);
      assert.equal(obj(spec.securityContext).runAsNonRoot, true);
      const [c] = arr(spec.containers).map(obj);
      assert.ok(c);
      assert.equal(obj(arr(c.ports).map(obj)[0]).containerPort, SERVICES[svc]!.port);
      assert.equal(obj(obj(c.readinessProbe).httpGet).path, '/readyz');
      assert.equal(obj(obj(c.livenessProbe).httpGet).path, '/healthz');
      const res = obj(c.resources);
      for (const k of ['requests', 'limits']) for (const r of ['cpu', 'memory']) assert.ok(obj(res[k])[r], `${k}.${r}`);
      const sc = obj(c.securityContext);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.ok(arr(c.envFrom).map(obj).some((e) => obj(e.configMapRef).name === svc), 'env from its ConfigMap');
      const mounts = arr(c.volumeMounts).map(obj);
      const tmp = mounts.find((m) => m.mountPath === '/tmp');
      assert.ok(tmp, '/tmp is mounted');
      const tmpVol = arr(spec.volumes).map(obj).find((v) => v.name === tmp.name);
      assert.ok(tmpVol && 'emptyDir' in tmpVol, '/tmp is an emptyDir');

      const service = docs.find((d) => d.kind === 'Service' && obj(d.metadata).name === svc)!;
      assert.equal(obj(arr(obj(service.spec).ports)[0]).port, SERVICES[svc]!.port);

      if (stateful) {
        const claims = arr(obj(workload.spec).volumeClaimTemplates).map(obj);
        assert.equal(obj(claims[0]?.metadata).name, 'embeddings');
        assert.ok(mounts.some((m) => m.name === 'embeddings' && m.mountPath === data.LOCATION));
      } else {
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
