import { open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Logger } from '@doppel/service-kit';
import { fsyncDir } from './fs.util.js';

/**
 * Write-ahead log in numbered segments `wal-<seq>.log`. A record is
 *   magic u32 | payload length u32 | crc32(payload) u32 | payload
 * (little endian). Appends are one write + fdatasync, so a crash can only tear the
 * last record of the last segment; that tail is dropped with a warning. A bad record
 * anywhere else (or followed by a valid one) is corruption and stops the start-up.
 */

const MAGIC = 0x4c415744; // "DWAL"
const HEADER = 12;
/** A record is one request; the largest upsert (1000 x 4096 floats + metadata) is far below. */
const MAX_RECORD = 256 * 1024 * 1024;

const NAME = /^wal-(\d{10})\.log$/;
export const walName = (seq: number): string => `wal-${String(seq).padStart(10, '0')}.log`;

export class WalCorruptError extends Error {
  constructor(readonly file: string, readonly offset: number, reason: string) {
    super(`write-ahead log ${file} is corrupt at byte ${offset}: ${reason}; refusing to start (move the file away to accept the loss)`);
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

/** Parses the records of one segment held in memory; stops at the first bad one. */
function parse(buf: Buffer): { records: Buffer[]; goodEnd: number; reason?: string } {
  const records: Buffer[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < HEADER) return { records, goodEnd: off, reason: 'incomplete record header' };
    if (buf.readUInt32LE(off) !== MAGIC) return { records, goodEnd: off, reason: 'bad record marker' };
    const len = buf.readUInt32LE(off + 4);
    if (len > MAX_RECORD || off + HEADER + len > buf.length) return { records, goodEnd: off, reason: 'record runs past the end of the file' };
    const payload = buf.subarray(off + HEADER, off + HEADER + len);
    if (crc32(payload) !== buf.readUInt32LE(off + 8)) return { records, goodEnd: off, reason: 'checksum mismatch' };
    records.push(payload);
    off += HEADER + len;
  }
  return { records, goodEnd: off };
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

  /**
   * Reads every record of the segments >= fromSeq, in order. A torn tail of the last
   * segment is truncated away (with a warning) so later appends follow valid data.
   */
  async replay(fromSeq: number, onRecord: (payload: Buffer, seq: number) => void): Promise<{ records: number; segments: number[] }> {
    const all = (await this.segments()).filter((s) => s >= fromSeq);
    for (let i = 1; i < all.length; i++) {
      if (all[i] !== all[i - 1]! + 1) throw new WalCorruptError(walName(all[i - 1]! + 1), 0, 'segment is missing');
    }
    if (all.length > 0 && all[0] !== fromSeq) throw new WalCorruptError(walName(fromSeq), 0, 'segment is missing');
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
        if (r.reason !== undefined) {
          const last = i === all.length - 1;
          if (!last || validRecordAfter(buf, r.goodEnd)) throw new WalCorruptError(file, r.goodEnd, r.reason);
          this.opts.log.warn(
            { file, offset: r.goodEnd, dropped_bytes: buf.length - r.goodEnd, reason: r.reason },
            'torn record at the end of the write-ahead log (expected after a crash): dropped',
          );
          await fh.truncate(r.goodEnd);
          await fh.sync();
        }
      } finally {
        await fh.close();
      }
    }
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
    if (created) await fsyncDir(this.opts.dir);
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
