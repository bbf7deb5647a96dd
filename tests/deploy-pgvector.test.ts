import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { SearchConfig } from '@doppel/schemas';

const root = process.env.DOPPEL_REPO_ROOT ?? fileURLToPath(new URL('..', import.meta.url));
const read = (p: string) => readFileSync(join(root, p), 'utf8');
type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const known = new Set(Object.keys(SearchConfig.properties));

describe('deployment of the pgvector backend', () => {
  it('when the compose pgvector profile is read, then PostgreSQL is health-checked and the search service points at it with known variables', () => {
    const services = obj(obj(parse(read('docker-compose.yml'), { merge: true })).services);
    const pg = obj(services.postgres);
    const svc = obj(services['contextual-search-pgvector']);
    assert.deepEqual(pg.profiles, ['pgvector']);
    assert.deepEqual(svc.profiles, ['pgvector']);
    assert.match(String(pg.image), /^pgvector\/pgvector:/);
    assert.ok(arr(obj(pg.healthcheck).test).includes('pg_isready'));
    const env = obj(svc.environment);
    assert.deepEqual(Object.keys(env).filter((k) => !known.has(k)), []);
    assert.equal(env.SEARCH_BACKEND, 'pgvector');
    assert.match(String(env.DATABASE_URL), /@postgres:5432\//);
    assert.equal(obj(obj(svc.depends_on).postgres).condition, 'service_healthy');
    assert.equal(svc.read_only, true);
  });

  it('when the k8s pgvector overlay is read, then it adds a PostgreSQL StatefulSet with a volume and a Secret, and a probed, limited search Deployment with an HPA', () => {
    const k = obj(parse(read('k8s/pgvector/kustomization.yaml')));
    assert.deepEqual(arr(k.resources), ['../', 'postgres.yaml', 'contextual-search-pgvector.yaml']);
    const pgDocs = parseAllDocuments(read('k8s/pgvector/postgres.yaml')).map((d) => obj(d.toJS()));
    const sts = pgDocs.find((d) => d.kind === 'StatefulSet')!;
    assert.ok(pgDocs.some((d) => d.kind === 'Secret' && obj(d.stringData).DATABASE_URL));
    assert.equal(obj(arr(obj(sts.spec).volumeClaimTemplates)[0]).metadata && obj(obj(arr(obj(sts.spec).volumeClaimTemplates)[0]).metadata).name, 'pgdata');
    const docs = parseAllDocuments(read('k8s/pgvector/contextual-search-pgvector.yaml')).map((d) => obj(d.toJS()));
    const cm = obj(docs.find((d) => d.kind === 'ConfigMap')!.data);
    assert.deepEqual(Object.keys(cm).filter((v) => !known.has(v)), []);
    assert.equal(cm.SEARCH_BACKEND, 'pgvector');
    const dep = docs.find((d) => d.kind === 'Deployment')!;
    const [c] = arr(obj(obj(obj(dep.spec).template).spec).containers).map(obj);
    assert.equal(obj(obj(c!.readinessProbe).httpGet).path, '/readyz');
    assert.equal(obj(obj(c!.livenessProbe).httpGet).path, '/healthz');
    for (const kk of ['requests', 'limits']) for (const r of ['cpu', 'memory']) assert.ok(obj(obj(c!.resources)[kk])[r], `${kk}.${r}`);
    assert.equal(obj(c!.securityContext).readOnlyRootFilesystem, true);
    const url = arr(c!.env).map(obj).find((e) => e.name === 'DATABASE_URL');
    assert.equal(obj(obj(url?.valueFrom).secretKeyRef).name, 'doppel-postgres');
    const hpa = docs.find((d) => d.kind === 'HorizontalPodAutoscaler')!;
    assert.equal(obj(obj(hpa.spec).scaleTargetRef).name, 'contextual-search-pgvector');
    assert.equal(obj(obj(arr(obj(hpa.spec).metrics)[0]).resource).name, 'cpu');
  });
});
