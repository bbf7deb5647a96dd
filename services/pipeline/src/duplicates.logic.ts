import type { EncoderClient, MatchingClient, SearchClient } from '@doppel/clients';
import { ORIENTATION_ROWS, type DuplicatesRequest, type DuplicatesResponse, type MatchRequest, type Orientations, type Static } from '@doppel/schemas';
import { isAppError } from '@doppel/service-kit';
import { resolveImagePath, type ResolvedImage, type UrlFetcher } from '@doppel/image-source';
import { matcherTargets } from './image-location.js';
import { HUBNESS_K, rerankByHubness } from './candidate-rerank.logic.js';
import { assertSameModel } from './fingerprint-model.logic.js';
import type { StoredFingerprints } from './stored-fingerprint.logic.js';

export type DuplicatesResult = Static<typeof DuplicatesResponse>['response'];
type Candidate = DuplicatesResult['candidates'][number];

export interface DuplicatesDeps {
  imagesRoot: string;
  encoder: EncoderClient;
  search: SearchClient;
  matching: MatchingClient;
  urls: UrlFetcher;
  nbNeighbors: number;
  minScore: number;
  /** Images fetched from search and re-ranked (at least the candidates asked for). */
  searchK: number;
  hubnessWeight: number;
  orientationSearch: OrientationSearch;
  /** What a turned search encodes: the 4 quarter turns, or (SEARCH_MIRRORS) all 8 orientations. */
  turned: Exclude<Orientations, 'none'>;
  /** Indexed fingerprints a query by path reuses instead of encoding it again. */
  stored: StoredFingerprints;
}

const ms = (start: number) => Math.round((performance.now() - start) * 10) / 10;

type CandidateSource = Pick<MatchRequest, 'candidate' | 'candidate_base64'>;
type Prepared = { handle: string } | { error: unknown };

/** Never rejects: the query may have no candidates, and then nothing waits for it. */
function prepareCandidate(matching: MatchingClient, candidate: CandidateSource): Promise<Prepared> {
  return matching.prepare(candidate).then((r) => ({ handle: r.candidate_handle }), (error: unknown) => ({ error }));
}

/**
 * /match by handle. When the prepare failed, or the handle expired meanwhile (a query
 * slower than PREPARED_TTL_MS, a matcher restart), the candidate is sent itself: that
 * costs one extraction more, never the query, and a bad image fails there with its own 4xx.
 */
async function matchPrepared(matching: MatchingClient, prepared: Prepared, candidate: CandidateSource, rest: Omit<MatchRequest, 'candidate' | 'candidate_base64' | 'candidate_handle'>) {
  if ('handle' in prepared) {
    try {
      return await matching.match({ candidate_handle: prepared.handle, ...rest });
    } catch (e) {
      if (!isAppError(e) || e.code !== 'HANDLE_EXPIRED') throw e;
    }
  }
  return matching.match({ ...candidate, ...rest });
}

/** The orientations a query is searched in: only its own, then (cascade) turned when that verifies nothing. */
export type OrientationSearch = 'cascade' | 'all';

/**
 * The candidates of a stage to send to the matcher, in rank order: those not checked yet,
 * and first, the stage's likeliest candidate again if an earlier request checked it further
 * down its list. The matcher gives the first neighbours of a request a second look at finer
 * resolution (its REFINE_TOP); when the turned search makes an image checked lower on the
 * upright list the likeliest, that look goes to it.
 */
export function toVerify<C extends { relative_path: string }>(candidates: C[], checked: ReadonlyMap<string, number>, sentFirst: ReadonlySet<string>): C[] {
  const top = candidates[0];
  const again = top && checked.has(top.relative_path) && !sentFirst.has(top.relative_path) ? [top] : [];
  return [...again, ...candidates.filter((c) => !checked.has(c.relative_path))];
}

type Stage = Orientations;
interface Searched {
  candidates: Candidate[];
  neighbors: Awaited<ReturnType<SearchClient['searchBatch']>>['neighbors'];
  fromIndex: boolean;
}

/**
 * Encodes the query in one, 4 or 8 orientations (one encoder call) and searches every
 * fingerprint in one round-trip: search merges the orientations' neighbours per image
 * (best score and the orientation that gave it), keeps the best k (one more: the query
 * may be indexed) and gives each its hubness; the re-ranked best nb are the candidates.
 */
async function encodeAndSearch(deps: DuplicatesDeps, source: { relative_path: string } | { image_base64: string }, stage: Stage, nb: number, minScore: number, file: ResolvedImage | undefined, timings: { encode: number; search: number }): Promise<Searched> {
  let t = performance.now();
  const relPath = file?.id;
  // The query as it is, by path, indexed and unchanged: search holds its fingerprint already.
  const stored = stage === 'none' && file ? await deps.stored.forQuery(file) : undefined;
  const encoded: { fingerprint: number[]; model: string; orientations?: Array<{ name: string; fingerprint: number[] }> } = stored ?? await deps.encoder.encode({ ...source, orientations: stage });
  if (!stored) deps.stored.noteEncoderModel(encoded.model);
  timings.encode += ms(t);
  t = performance.now();
  const fingerprints = encoded.orientations?.length
    ? encoded.orientations.map((o) => ({ orientation: o.name, vec: o.fingerprint }))
    : [{ orientation: 'identity' as const, vec: encoded.fingerprint }];
  const k = Math.max(nb, deps.searchK);
  const { neighbors } = await deps.search.searchBatch({
    queries: fingerprints.map((f) => ({ vec_features: f.vec })),
    nb_neighbors: k,
    min_score: minScore,
    limit: k + 1,
    ...(deps.hubnessWeight > 0 ? { hubness_k: HUBNESS_K } : {}),
  });
  assertSameModel(neighbors, encoded.model);
  const candidates: Candidate[] = rerankByHubness(neighbors, deps.hubnessWeight)
    .filter((n) => n.relative_path !== relPath)
    .slice(0, nb)
    .map((n) => ({ relative_path: n.relative_path, score: n.score, orientation: fingerprints[n.query]?.orientation ?? 'identity' }));
  timings.search += ms(t);
  return { candidates, neighbors, fromIndex: stored !== undefined };
}

/**
 * encode -> search -> verify with instance-matching. With `cascade` (the default) the query
 * is first encoded and searched as it is (one forward pass): most copies keep their
 * orientation, and their original is verified from that. Only when no candidate verifies is
 * the query searched turned: its 4 quarter turns (or, with SEARCH_MIRRORS, their 4 mirrors
 * too), and the candidates not yet checked verified. Mirrors are left out by default because
 * the fingerprint of an image and of its mirror are close (ImageNet features are trained
 * to be, by flipped training images), so the upright search already finds a mirrored copy's
 * original, and verification tries every candidate mirrored. So a query that has an upright
 * verified copy is not searched for turned copies too (ORIENTATION_SEARCH=all does that); a query
 * whose verification says it has no structure to prove anything with is not searched
 * again. A query given by relative_path is left out of its own results.
 */
export async function findDuplicates(deps: DuplicatesDeps, req: DuplicatesRequest): Promise<DuplicatesResult> {
  const nb = req.nb_neighbors ?? deps.nbNeighbors;
  const minScore = req.min_score ?? deps.minScore;
  const t0 = performance.now();
  // A url is downloaded once, here, under the same address policy as the encoder's; both
  // the encoder and the matcher get these bytes (a second download could see other content,
  // or another address). The download counts in the encode stage.
  const bytes = req.url !== undefined ? (await deps.urls.fetch(req.url)).toString('base64') : req.image_base64;
  // A path is resolved here (403 out of the root, symlinks included; 404 missing) and used
  // by its canonical id, so `./a.jpg` is left out of its own results like `a.jpg`.
  const file = req.relative_path !== undefined ? await resolveImagePath(deps.imagesRoot, req.relative_path) : undefined;
  const relPath = file?.id;
  const source = relPath !== undefined ? { relative_path: relPath } : { image_base64: bytes! };
  // The matcher reads indexed paths itself; a query that is not a path goes as bytes.
  const candidate: Pick<MatchRequest, 'candidate' | 'candidate_base64'> = relPath !== undefined
    ? { candidate: relPath }
    : { candidate_base64: bytes! };
  // The query's SIFT extraction starts now and runs while it is encoded and searched.
  const prepared = prepareCandidate(deps.matching, candidate);
  const timings = { encode: ms(t0), search: 0, match: 0 };
  const stages: Stage[] = req.all_orientations === false ? ['none'] : deps.orientationSearch === 'cascade' ? ['none', deps.turned] : [deps.turned];

  let duplicated: DuplicatesResult['duplicated'] = [];
  let reason: DuplicatesResult['reason'];
  let candidates: Candidate[] = [];
  const scores = new Map<string, number>();
  /** Candidates a match request has listed first. */
  const sentFirst = new Set<string>();
  let searched = 0;
  let fromIndex = false;
  for (const stage of stages) {
    const found = await encodeAndSearch(deps, source, stage, nb, minScore, file, timings);
    searched = ORIENTATION_ROWS[stage];
    fromIndex ||= found.fromIndex;
    candidates = found.candidates;
    const fresh = toVerify(candidates, scores, sentFirst);
    if (fresh.length > 0) {
      sentFirst.add(fresh[0]!.relative_path);
      const t = performance.now();
      // Ids added through POST /images are verified against where their bytes are kept.
      const targets = matcherTargets(fresh.map((c) => c.relative_path), found.neighbors);
      const rest = {
        neighbors: targets.neighbors,
        ...(req.threshold !== undefined ? { threshold: req.threshold } : {}),
      };
      const matched = await matchPrepared(deps.matching, await prepared, candidate, rest);
      const searchScore = new Map(fresh.map((c) => [c.relative_path, c.score]));
      duplicated = matched.duplicated.flatMap((m) => targets.idsOf(m.relative_path).map((id) => ({ ...m, relative_path: id }))).map((d) => ({
        relative_path: d.relative_path,
        score: d.score,
        inliers: d.inliers,
        ...(searchScore.has(d.relative_path) ? { search_score: searchScore.get(d.relative_path)! } : {}),
        ...(d.method ? { method: d.method } : {}),
        ...(d.region ? { region: d.region } : {}),
        ...(d.query_region ? { query_region: d.query_region } : {}),
        ...(d.partial !== undefined ? { partial: d.partial } : {}),
      })).sort((a, b) => b.score - a.score);
      reason = matched.reason;
      // Every candidate's verification score, rejected ones too: a precision/recall curve over
      // the match threshold needs no re-run (doppel eval).
      for (const c of matched.checked) for (const id of targets.idsOf(c.relative_path)) scores.set(id, c.score);
      timings.match += ms(t);
    }
    if (duplicated.length > 0 || reason === 'query_without_structure') break;
  }
  const verified = candidates.map((c) => (scores.has(c.relative_path) ? { ...c, verification_score: scores.get(c.relative_path)! } : c));
  return { duplicated, candidates: verified, orientations_searched: searched, fingerprint: fromIndex ? 'indexed' : 'encoded', timings_ms: timings, ...(reason ? { reason } : {}) };
}
