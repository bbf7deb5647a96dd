import {
  EncodeBatchResponse, EncodeResponse, type EncodeBatchRequest, type EncodeRequest, type Static,
} from '@doppel/schemas';
import { ServiceHttp, type ClientOptions } from './http.client.js';
import { readinessOf } from './readiness.client.js';

export type EncodeResult = Static<typeof EncodeResponse>['response'];
export type EncodeBatchResult = Static<typeof EncodeBatchResponse>['response']['results'][number];

/** Client of image-encoder. Encoding is a pure function of the image: every call is idempotent. */
export function createEncoderClient(opts: ClientOptions) {
  const http = new ServiceHttp('image-encoder', opts);
  return {
    baseUrl: http.baseUrl,
    encode: (body: EncodeRequest) =>
      http.call({ method: 'POST', path: '/encode', body, schema: EncodeResponse, idempotent: true }),
    encodeBatch: (body: EncodeBatchRequest) =>
      http.call({ method: 'POST', path: '/encode/batch', body, schema: EncodeBatchResponse, idempotent: true }),
    ...readinessOf(http),
  };
}
export type EncoderClient = ReturnType<typeof createEncoderClient>;
