import { open, readdir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '@doppel/service-kit';
import { fsyncDir } from './fs.util.js';

/**
 * Write-ahead log in numbered segments `wal-<seq>.log`. A record is
 *   magic u32 | payload length u32 | crc32(payload) u32 | payload
 * (little endian); the payload is JSON text, which never holds a NUL byte. Appends are
 * one write + fdatasync, so a crash can only tear the last record of the last segment,
 * and a torn record is recognisable: its header or payload is incomplete, or the part the
 * disk never wrote reads back as zero bytes. That tail is dropped with a warning. Any
 * other bad record (a complete one whose checksum fails, a bad marker, anything before
 * the tail) is corruption and stops the start naming the file and offset, unless
 * WAL_RECOVERY=truncate accepts the loss. `wal-head` names the newest segment, so a
 * missing segment, the newest included, is detected too.
 */

const MAGIC = 0x4c415744; // "DWAL"
const HEADER = 12;
/** A record is one request; the largest upsert (1000 x 4096 floats + metadata) is far below. */
const MAX_RECORD = 256 * 1024 * 1024;

const NAME = /^wal-(\d{10})\.log$/;
export const walName = (seq: number): string => `wal-${String(seq).padStart(10, '0')}.log`;
const HEAD_FILE = 'wal-head';
const HEAD_LINE = /^DOPPEL-WAL-HEAD (\d+)\n$/;

export type WalRecovery = 'strict' | 'truncate';

export class WalCorruptError extends Error {
  constructor(readonly file: string, readonly offset: number, reason: string) {
    super(
      `write-ahead log ${file} is corrupt at byte ${offset}: ${reason}; refusing to start ` +
        '(restore the file from a backup, or start once with WAL_RECOVERY=truncate to accept the loss of the records from there on)',
    );
    this.name = 'WalCorruptError';
  }
}

export function encodeRecord(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(payload.length, 4);
  out.writeUInt32LE(crc32(payload), 8);
  payload.copy(out, HEADER);
  return out;
}

/** Why parsing stopped: `torn` = what a crash during the last append leaves, `corrupt` = anything else. */
type Stop = { offset: number; reason: string; kind: 'torn' | 'corrupt' };

const allZero = (b: Buffer): boolean => b.every((x) => x === 0);

/** Parses the records of one segment held in memory; stops at the first bad one. */
function parse(buf: Buffer): { records: Buffer[]; stop?: Stop } {
  const records: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    const rest = buf.subarray(off);
    if (rest.length < HEADER) return { records, stop: { offset: off, reason: 'incomplete record header', kind: 'torn' } };
    if (rest.readUInt32LE(0) !== MAGIC) {
      // Space the file system allocated but the crashed write never filled reads as zeros.
      return { records, stop: { offset: off, reason: 'bad record marker', kind: allZero(rest) ? 'torn' : 'corrupt' } };
    }
    const len = rest.readUInt32LE(4);
    if (len > MAX_RECORD) return { records, stop: { offset: off, reason: `record length ${len} exceeds the maximum`, kind: 'corrupt' } };
    if (HEADER + len > rest.length) return { records, stop: { offset: off, reason: 'record runs past the end of the file', kind: 'torn' } };
    const payload = rest.subarray(HEADER, HEADER + len);
    if (crc32(payload) !== rest.readUInt32LE(8)) {
      // Complete and no NUL byte: the record was written whole and changed since (bit rot, an edit).
      return { records, stop: { offset: off, reason: 'checksum mismatch of a complete record', kind: payload.includes(0) ? 'torn' : 'corrupt' } };
    }
    records.push(payload);
    off += HEADER + len;
  }
  return { records };
}

/** True when a valid record starts somewhere after `from`: the damage is not a torn tail. */
function validRecordAfter(buf: Buffer, from: number): boolean {
  const magic = Buffer.alloc(4);
  magic.writeUInt32LE(MAGIC, 0);
  let at = buf.indexOf(magic, from + 1);
  while (at >= 0) {
    if (parse(buf.subarray(at)).records.length > 0) return true;
    at = buf.indexOf(magic, at + 1);
  }
  return false;
}

export interface WalOptions {
  dir: string;
  log: Logger;
  /** strict (default): corruption stops the start; truncate: the loss is accepted and logged. */
  recovery?: WalRecovery;
  /** Called with the seconds each fdatasync took. */
  onSync?: (seconds: number) => void;
}

export class WalStore {
  private fh: FileHandle | undefined;
  private size = 0;
  private seq = 0;
  private broken: Error | undefined;

  constructor(private readonly opts: WalOptions) {}

  async segments(): Promise<number[]> {
    const names = await readdir(this.opts.dir);
    return names
      .map((n) => NAME.exec(n)?.[1])
      .filter((s): s is string => s !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  get currentSeq(): number {
    return this.seq;
  }

  /** The newest segment ever opened, from `wal-head` (undefined before the first one). */
  private async readHead(): Promise<number | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.opts.dir, HEAD_FILE), 'latin1');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const m = HEAD_LINE.exec(text);
    if (!m) throw new WalCorruptError(join(this.opts.dir, HEAD_FILE), 0, 'unreadable head marker');
    return Number(m[1]);
  }

  /** Records `seq` as the newest segment: tmp file, fsync, rename, fsync the directory. */
  private async writeHead(seq: number): Promise<void> {
    const file = join(this.opts.dir, HEAD_FILE);
    const fh = await open(`${file}.tmp`, 'w');
    try {
      await fh.writeFile(`DOPPEL-WAL-HEAD ${seq}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(`${file}.tmp`, file);
    await fsyncDir(this.opts.dir);
  }

  /** Segments fromSeq..head that are not on disk. */
  private async missingSegments(fromSeq: number, present: number[], snapshotLoaded: boolean): Promise<number[]> {
    const head = await this.readHead();
    // A snapshot n is taken right after segment n was created; the head is the newest created.
    const last = Math.max(head ?? -1, snapshotLoaded ? fromSeq : -1, present.at(-1) ?? -1);
    const have = new Set(present);
    const missing: number[] = [];
    for (let s = fromSeq; s <= last; s++) if (!have.has(s)) missing.push(s);
    return missing;
  }

  /**
   * Reads every record of the segments >= fromSeq, in order. A torn tail of the last
   * segment is truncated away (with a warning) so later appends follow valid data;
   * corruption or a missing segment throws WalCorruptError unless recovery is `truncate`.
   */
  async replay(fromSeq: number, snapshotLoaded: boolean, onRecord: (payload: Buffer, seq: number) => void): Promise<{ records: number; segments: number[] }> {
    const strict = (this.opts.recovery ?? 'strict') === 'strict';
    let all = (await this.segments()).filter((s) => s >= fromSeq);
    const missing = await this.missingSegments(fromSeq, all, snapshotLoaded);
    if (missing.length > 0) {
      const first = missing[0]!;
      if (strict) throw new WalCorruptError(join(this.opts.dir, walName(first)), 0, `segment is missing (expected segments ${fromSeq}..${Math.max(...missing, ...all)})`);
      // Accepting the loss: only the segments before the first gap can be trusted to be complete history.
      const dropped = all.filter((s) => s > first);
      for (const s of dropped) await rename(join(this.opts.dir, walName(s)), join(this.opts.dir, `${walName(s)}.corrupt`));
      this.opts.log.error({ missing, set_aside: dropped.map(walName) }, 'WAL_RECOVERY=truncate: missing write-ahead log segment(s) accepted as lost; later segments renamed to *.corrupt');
      all = all.filter((s) => s < first);
    }
    let count = 0;
    for (let i = 0; i < all.length; i++) {
      const seq = all[i]!;
      const file = join(this.opts.dir, walName(seq));
      const fh = await open(file, 'r+');
      try {
        const buf = await fh.readFile();
        const r = parse(buf);
        for (const p of r.records) {
          onRecord(p, seq);
          count++;
        }
        if (r.stop === undefined) continue;
        const { offset, reason } = r.stop;
        const last = i === all.length - 1;
        const torn = r.stop.kind === 'torn' && last && !validRecordAfter(buf, offset);
        if (torn) {
          this.opts.log.warn({ file, offset, dropped_bytes: buf.length - offset, reason }, 'torn record at the end of the write-ahead log (expected after a crash): dropped');
        } else if (strict) {
          throw new WalCorruptError(file, offset, reason);
        } else {
          // Kept for inspection; everything after the bad record is dropped (later segments too).
          await writeFile(`${file}.corrupt`, buf);
          this.opts.log.error({ file, offset, dropped_bytes: buf.length - offset, reason, copy: `${file}.corrupt` }, 'WAL_RECOVERY=truncate: corrupt write-ahead log record accepted as lost');
          for (const s of all.slice(i + 1)) await rename(join(this.opts.dir, walName(s)), join(this.opts.dir, `${walName(s)}.corrupt`));
          all = all.slice(0, i + 1);
        }
        await fh.truncate(offset);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }
    if (!strict) await this.writeHead(all.at(-1) ?? fromSeq);
    return { records: count, segments: all };
  }

  /** Opens segment `seq` for appending, creating it if needed. */
  async openSegment(seq: number): Promise<void> {
    const file = join(this.opts.dir, walName(seq));
    const fh = await open(file, 'a');
    const st = await fh.stat();
    const created = st.size === 0;
    this.fh = fh;
    this.size = st.size;
    this.seq = seq;
    if (created) {
      await fsyncDir(this.opts.dir);
      await this.writeHead(seq);
    } else if ((await this.readHead()) === undefined) {
      // A log written before the head marker existed.
      await this.writeHead(seq);
    }
  }

  /**
   * Appends records with one write and one fdatasync (group commit: the caller passes
   * every request waiting). Resolves once durable. On failure the partial write is cut
   * off; if even that fails the log refuses further appends until restart.
   */
  async append(payloads: Buffer[]): Promise<void> {
    if (this.broken) throw this.broken;
    const fh = this.fh;
    if (!fh) throw new Error('write-ahead log is not open');
    const buf = Buffer.concat(payloads.map(encodeRecord));
    try {
      let written = 0;
      while (written < buf.length) {
        const r = await fh.write(buf, written, buf.length - written, this.size + written);
        written += r.bytesWritten;
      }
      const t0 = process.hrtime.bigint();
      await fh.datasync();
      this.opts.onSync?.(Number(process.hrtime.bigint() - t0) / 1e9);
      this.size += buf.length;
    } catch (err) {
      try {
        await fh.truncate(this.size);
        await fh.datasync();
      } catch (e2) {
        this.broken = new Error(`write-ahead log is unusable after a failed write: ${(e2 as Error).message}`);
      }
      throw err;
    }
  }

  /** Starts a new segment; everything logged so far is in segments < the returned seq. */
  async rotate(): Promise<number> {
    await this.fh?.close();
    this.fh = undefined;
    await this.openSegment(this.seq + 1);
    return this.seq;
  }

  async removeBefore(seq: number): Promise<void> {
    for (const s of await this.segments()) {
      if (s < seq) await rm(join(this.opts.dir, walName(s)), { force: true });
    }
  }

  async close(): Promise<void> {
    await this.fh?.close();
    this.fh = undefined;
  }
}
