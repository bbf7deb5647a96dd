/**
 * Runs tasks with the same key one after another (and different keys concurrently): an
 * id's add, replace and delete, or a blob's keep and release, must not interleave.
 * In-process only: replicas of the pipeline sharing one API_STATE_DIR are not serialised.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }
}
