import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  validate, ERROR_CATALOG, EncodeRequest, EncodeBatchRequest, SearchRequest, UpsertRequest, DeleteRequest,
  MatchRequest, CompareRequest, DuplicatesRequest, IndexRequest, SearchResponse, ErrorEnvelope, buildOpenApi,
  ajv, ListQuery,
} from '../src/index.js';

describe('request schemas', () => {
  it('when valid examples are given, then every request schema accepts them', () => {
    const ok: Array<[Parameters<typeof validate>[0], unknown]> = [
      [EncodeRequest, { request_id: 1, relative_path: 'a/b.jpg' }],
      [EncodeRequest, { image_base64: 'aGVsbG8=', orientations: 'all' }],
      [EncodeRequest, { url: 'https://example.com/x.png', orientations: 'none' }],
      [EncodeBatchRequest, { items: [{ request_id: 1, relative_path: 'a.jpg' }, { request_id: 2, url: 'http://x/y' }] }],
      [SearchRequest, { nb_neighbors: 10, vec_features: [0.1, 0.2], min_score: 0.5 }],
      [UpsertRequest, { items: [{ relative_path: 'a.jpg', vec_features: [1, 0], metadata: { w: 3 } }] }],
      [DeleteRequest, { relative_paths: ['a.jpg'] }],
      [MatchRequest, { candidate: 'q.jpg', neighbors: ['a.jpg', 'b.jpg'], threshold: 0.4 }],
      [CompareRequest, { candidate: 'q.jpg', target_base64: 'aGVsbG8=' }],
      [DuplicatesRequest, { relative_path: 'q.jpg', nb_neighbors: 5 }],
      [IndexRequest, { relative_path: 'photos', recursive: true }],
      [ListQuery, { offset: 0, limit: 10 }],
    ];
    for (const [schema, data] of ok) {
      const r = validate(schema, data);
      assert.equal(r.ok, true, `${(schema as { $id?: string }).$id}: ${JSON.stringify(r)}`);
    }
  });

  it('when a required field is missing, then the message names it', () => {
    const r = validate(SearchRequest, { vec_features: [1] });
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error.message, /^nb_neighbors: is required/);
  });

  it('when a field has the wrong type, then the message names the field path', () => {
    const r = validate(UpsertRequest, { items: [{ relative_path: 'a', vec_features: [1, 'x'] }] });
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.field, 'items[0].vec_features[1]');
  });

  it('when an unknown field is sent, then it is rejected by name', () => {
    const r = validate(DeleteRequest, { relative_paths: ['a'], purge: true });
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.error.message, /purge: is not allowed/);
  });

  it('when no image source or two of them are given, then "exactly one" is reported', () => {
    const none = validate(EncodeRequest, { request_id: 1 });
    const two = validate(EncodeRequest, { relative_path: 'a', url: 'http://x' });
    assert.ok(!none.ok && /exactly one of relative_path, image_base64, url/.test(none.error.message));
    assert.ok(!two.ok && /got relative_path and url/.test(two.error.message));
  });

  it('when limits are exceeded, then the request is rejected', () => {
    assert.equal(validate(SearchRequest, { nb_neighbors: 1001, vec_features: [1] }).ok, false);
    assert.equal(validate(SearchRequest, { nb_neighbors: 0, vec_features: [1] }).ok, false);
    assert.equal(validate(SearchRequest, { nb_neighbors: 1, vec_features: [] }).ok, false);
    assert.equal(validate(EncodeBatchRequest, { items: Array.from({ length: 65 }, () => ({ relative_path: 'a' })) }).ok, false);
    assert.equal(validate(MatchRequest, { candidate: 'q', neighbors: ['a'], threshold: 1.5 }).ok, false);
    assert.equal(validate(IndexRequest, { relative_path: '' }).ok, false);
  });
});

describe('response schemas and catalogue', () => {
  it('when a success or failure envelope is built, then it matches the envelope schemas', () => {
    assert.equal(validate(SearchResponse, { global_status: 1, error_message: '', response: { neighbors: [{ relative_path: 'a', score: 0.9 }] } }).ok, true);
    assert.equal(validate(SearchResponse, { global_status: 1, error_message: '', response: { neighbors: [{ relative_path: 'a', score: 1.2 }] } }).ok, false);
    assert.equal(validate(ErrorEnvelope, { global_status: 0, error_message: 'x', error_code: 'INVALID_REQUEST', response: {} }).ok, true);
    assert.equal(validate(ErrorEnvelope, { global_status: 0, error_message: 'x', error_code: 'NOPE', response: {} }).ok, false);
  });

  it('when the catalogue is read, then each code maps to its documented HTTP status', () => {
    assert.equal(ERROR_CATALOG.INVALID_REQUEST, 400);
    assert.equal(ERROR_CATALOG.IMAGE_NOT_FOUND, 404);
    assert.equal(ERROR_CATALOG.PAYLOAD_TOO_LARGE, 413);
    assert.equal(ERROR_CATALOG.UNSUPPORTED_MEDIA_TYPE, 415);
    assert.equal(ERROR_CATALOG.UNDECODABLE_IMAGE, 422);
    assert.equal(ERROR_CATALOG.OVERLOADED, 429);
    assert.equal(ERROR_CATALOG.DOWNSTREAM_FAILURE, 502);
    assert.equal(ERROR_CATALOG.UNAVAILABLE, 503);
    assert.equal(ERROR_CATALOG.DOWNSTREAM_TIMEOUT, 504);
  });

  it('when an OpenAPI document is built, then it references the contract schemas by $id', () => {
    const doc = buildOpenApi({ title: 't', version: '1' }, [{ method: 'post', path: '/search', summary: 's', request: SearchRequest, response: SearchResponse }]);
    const schemas = doc.components.schemas as Record<string, { $id?: string }>;
    assert.ok(Object.values(schemas).some((s) => s.$id === SearchRequest.$id));
    assert.ok(doc.paths['/search']?.post);
    // every schema in the document compiles with the shared ajv instance
    for (const s of Object.values(schemas)) assert.ok(ajv.getSchema(s.$id!) ?? ajv.compile({ ...s, $id: undefined }));
  });
});

describe('every exported schema', () => {
  it('when compiled with the shared ajv, then none is refused', async () => {
    const all = await import('../src/index.js');
    let n = 0;
    for (const [name, value] of Object.entries(all)) {
      if (value && typeof value === 'object' && '$id' in value && typeof (value as { $id: unknown }).$id === 'string') {
        assert.doesNotThrow(() => all.validatorFor(value as Parameters<typeof all.validatorFor>[0]), name);
        n++;
      }
    }
    assert.ok(n >= 20, `only ${n} schemas found`);
  });
});
