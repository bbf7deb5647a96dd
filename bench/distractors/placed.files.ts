/**
 * Putting dev and distractor files together into one image root for a bench run, without
 * copying thousands of files when the file system allows a hard link.
 */
import { copyFileSync, linkSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

/** How a distractor is named inside such a root: no distractor can take the name of an original. */
export const DISTRACTOR_PREFIX = 'distractor-';

/** `from` at `to` (parent folders made): a hard link, or a copy across file systems. */
export function placeFile(from: string, to: string): void {
  mkdirSync(dirname(to), { recursive: true });
  try { linkSync(from, to); } catch { copyFileSync(from, to); }
}
