export { ServiceHttp, isDownstreamOutage, type ClientOptions, type CallOptions } from './http.client.js';
export { createEncoderClient, type EncoderClient, type EncodeResult, type EncodeBatchResult } from './encoder.client.js';
export { createSearchClient, type SearchClient } from './search.client.js';
export { createMatchingClient, type MatchingClient, type MatchResult } from './matching.client.js';
export { createPipelineClient, type PipelineClient, type DuplicatesResult, type IndexResult } from './pipeline.client.js';
