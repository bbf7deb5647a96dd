import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface EncoderMetrics {
  encodeSeconds: Histogram<'route' | 'orientations'>;
  batchSize: Histogram;
  inferenceSeconds: Histogram;
  queueDepth: Gauge;
  errors: Counter<'code'>;
}

export function createEncoderMetrics(registry: Registry): EncoderMetrics {
  return {
    encodeSeconds: new Histogram({
      name: 'encoder_encode_duration_seconds',
      help: 'Time to encode one image (load, decode, queue, inference), by route and orientations.',
      labelNames: ['route', 'orientations'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'encoder_inference_batch_size',
      help: 'Images per session.run (micro-batch size).',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers: [registry],
    }),
    inferenceSeconds: new Histogram({
      name: 'encoder_inference_duration_seconds',
      help: 'Wall time of one micro-batch in a worker, including transfer.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    queueDepth: new Gauge({ name: 'encoder_queue_depth', help: 'Images waiting for an inference worker.', registers: [registry] }),
    errors: new Counter({ name: 'encoder_errors_total', help: 'Failed encodes (requests or batch items) by error code.', labelNames: ['code'], registers: [registry] }),
  };
}
