import { realpath } from 'node:fs/promises';
import { basename, dirname, join, relative, isAbsolute } from 'node:path';

export const isInsideDir = (dir: string, p: string): boolean => {
  const r = relative(dir, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/**
 * Where a path really lands: its realpath, or, when it does not exist, the realpath of
 * its deepest existing ancestor joined with the rest. Judging a missing path by where its
 * parent lands is what keeps `link-out/missing.jpg` (403) from answering differently
 * than `link-out/secret.jpg` (403): otherwise 404 vs 403 tells whether an outside file exists.
 */
export async function realLocation(p: string): Promise<{ real: string; exists: boolean }> {
  const rest: string[] = [];
  let cur = p;
  for (;;) {
    try {
      const real = await realpath(cur);
      return { real: rest.length ? join(real, ...rest.reverse()) : real, exists: rest.length === 0 };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const parent = dirname(cur);
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || parent === cur) throw e;
      rest.push(basename(cur));
      cur = parent;
    }
  }
}
