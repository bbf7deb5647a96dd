import type { DeleteResponse, UpsertResponse, VectorItem } from '@doppel/schemas';
import { AppError, type Logger } from '@doppel/service-kit';
import type { IndexState } from './index.state.js';
import { encodeDeleteOp, encodeUpsertOp, joinOps } from './wal.codec.js';
import type { WalStore } from './wal.store.js';

type Pending =
  | { op: 'u'; items: VectorItem[]; done: (r: UpsertResponse['response']) => void; fail: (e: unknown) => void }
  | { op: 'd'; paths: string[]; done: (r: DeleteResponse['response']) => void; fail: (e: unknown) => void };

/** A commit round stops taking requests past this many bytes of log (records stay far below the WAL's cap). */
const MAX_GROUP_BYTES = 32 * 1024 * 1024;
/** Vectors + paths waiting for the WAL before new mutations get 429. */
const MAX_QUEUED_ITEMS = 200_000;

const sizeOf = (p: Pending): number => (p.op === 'u' ? p.items.length : p.paths.length);

/**
 * The one writer of the hnswlib backend. Each round appends every waiting request to the
 * WAL as ONE record with one fdatasync (group commit), then applies them in order, then
 * answers: an acknowledged change is on disk. A crash can therefore tear only the one
 * unacknowledged record at the tail. The pump never throws: a request that cannot be
 * encoded or applied fails alone.
 */
export class GroupCommit {
  private queue: Pending[] = [];
  private queuedItems = 0;
  private running: Promise<void> | undefined;
  private paused = false;

  constructor(
    private readonly wal: WalStore,
    private readonly state: IndexState,
    private readonly log: Logger,
    /** Called after each applied round with the number of requests it logged. */
    private readonly onRound: (requests: number) => void,
  ) {}

  upsert(items: VectorItem[]): Promise<UpsertResponse['response']> {
    return new Promise((done, fail) => this.enqueue({ op: 'u', items, done, fail }));
  }

  delete(paths: string[]): Promise<DeleteResponse['response']> {
    return new Promise((done, fail) => this.enqueue({ op: 'd', paths, done, fail }));
  }

  /** Settles once the round in progress (if any) has been applied and answered. */
  get idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Holds mutations back (they queue) until resume(); waits for the round in progress. */
  async pause(): Promise<void> {
    this.paused = true;
    await this.running;
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  private enqueue(p: Pending): void {
    // Back-pressure: parsed batches wait in memory while the disk is slow (or a snapshot runs).
    if (this.queuedItems + sizeOf(p) > MAX_QUEUED_ITEMS) {
      p.fail(new AppError('OVERLOADED', 'too many changes are waiting to be written; retry shortly', { retryAfter: 1 }));
      return;
    }
    this.queuedItems += sizeOf(p);
    this.queue.push(p);
    this.kick();
  }

  private kick(): void {
    if (this.running || this.paused || this.queue.length === 0) return;
    this.running = this.pump()
      .catch((err: unknown) => this.log.error({ err }, 'write pump failed'))
      .finally(() => {
        this.running = undefined;
        this.kick();
      });
  }

  /** Takes waiting requests up to MAX_GROUP_BYTES of log; a request that cannot be serialised is failed here. */
  private takeRound(): { group: Pending[]; ops: string[] } {
    const group: Pending[] = [];
    const ops: string[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && (group.length === 0 || bytes < MAX_GROUP_BYTES)) {
      const p = this.queue.shift()!;
      this.queuedItems -= sizeOf(p);
      let json: string;
      try {
        json = p.op === 'u' ? encodeUpsertOp(p.items) : encodeDeleteOp(p.paths);
      } catch (err) {
        // Validation bounds metadata, so only a bug gets here; the other requests go on.
        this.log.error({ err }, 'a mutation could not be serialised for the write-ahead log');
        p.fail(new AppError('INVALID_REQUEST', 'the change cannot be serialised'));
        continue;
      }
      group.push(p);
      ops.push(json);
      bytes += json.length;
    }
    return { group, ops };
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 && !this.paused) {
      const { group, ops } = this.takeRound();
      if (group.length === 0) continue;
      try {
        await this.wal.append([joinOps(ops)]);
      } catch (err) {
        this.log.error({ err }, 'write-ahead log append failed');
        const e = new AppError('UNAVAILABLE', 'the change could not be made durable; it was not applied', { retryAfter: 1, cause: err });
        for (const p of group) p.fail(e);
        continue;
      }
      // Grow once for the whole group: resizeIndex copies the graph.
      this.state.engine.ensureCapacity(group.reduce((n, p) => n + (p.op === 'u' ? p.items.length : 0), 0));
      for (const p of group) {
        try {
          if (p.op === 'u') p.done({ ...this.state.applyUpsert(p.items), count: this.state.size });
          else p.done({ ...this.state.applyDelete(p.paths), count: this.state.size });
        } catch (err) {
          // Logged but not applied: the same record would fail again on replay. Only a bug gets here.
          this.log.error({ err }, 'applying a logged mutation failed');
          p.fail(err);
        }
      }
      this.state.settle();
      this.onRound(group.length);
    }
  }
}
