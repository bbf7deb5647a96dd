import { Gauge, Histogram, type Registry } from 'prom-client';

export interface SearchMetrics {
  indexSize: Gauge;
  walRecords: Gauge;
  searchSeconds: Histogram<'mode'>;
  searchEf: Histogram;
  walFsyncSeconds: Histogram;
  snapshotSeconds: Histogram;
}

/** `prefix` names the collection's metrics (`search` for the images, `search_regions` for their regions). */
export function createSearchMetrics(registry: Registry, prefix = 'search'): SearchMetrics {
  const fast = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];
  return {
    indexSize: new Gauge({ name: `${prefix}_index_vectors`, help: 'Live vectors in the index.', registers: [registry] }),
    walRecords: new Gauge({ name: `${prefix}_wal_records`, help: 'Mutations logged since the last snapshot.', registers: [registry] }),
    searchSeconds: new Histogram({
      name: `${prefix}_query_seconds`,
      help: 'In-process k-NN search time by engine.',
      labelNames: ['mode'],
      buckets: fast,
      registers: [registry],
    }),
    searchEf: new Histogram({ name: `${prefix}_ef`, help: 'The ef (HNSW beam width) each search ran with.', buckets: [16, 32, 64, 128, 256, 512, 1024, 4096], registers: [registry] }),
    walFsyncSeconds: new Histogram({ name: `${prefix}_wal_fsync_seconds`, help: 'fdatasync time of one WAL group commit.', buckets: fast, registers: [registry] }),
    snapshotSeconds: new Histogram({
      name: `${prefix}_snapshot_seconds`,
      help: 'Duration of a snapshot, from WAL rotation to the directory fsync.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
  };
}
