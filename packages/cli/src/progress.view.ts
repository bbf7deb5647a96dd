/** A one-line progress bar on stderr with rate and ETA; plain periodic lines when not a TTY. */
export class ProgressBar {
  private done = 0;
  private readonly start = Date.now();
  private lastPrinted = -1;

  constructor(private readonly label: string, private readonly total: number, private readonly stream: NodeJS.WriteStream = process.stderr) {}

  tick(n = 1): void {
    this.done += n;
    this.render();
  }

  private render(): void {
    const frac = this.total === 0 ? 1 : this.done / this.total;
    const secs = (Date.now() - this.start) / 1000;
    const rate = secs > 0 ? this.done / secs : 0;
    const eta = rate > 0 ? (this.total - this.done) / rate : 0;
    const line = `${this.label} ${bar(frac)} ${this.done}/${this.total} ${(frac * 100).toFixed(0)}%  ${rate.toFixed(1)}/s  ETA ${clock(eta)}`;
    if (this.stream.isTTY) {
      this.stream.write(`\r${line}\x1b[K`);
      return;
    }
    const decile = Math.floor(frac * 10);
    if (decile !== this.lastPrinted) {
      this.lastPrinted = decile;
      this.stream.write(`${line}\n`);
    }
  }

  finish(summary: string): void {
    if (this.stream.isTTY) this.stream.write('\r\x1b[K');
    const secs = (Date.now() - this.start) / 1000;
    this.stream.write(`${this.label} ${summary} in ${clock(secs)}\n`);
  }
}

const bar = (frac: number, width = 24) => {
  const full = Math.round(frac * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
};

export function clock(secs: number): string {
  const s = Math.max(0, Math.round(secs));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}` : `${m}:${String(s % 60).padStart(2, '0')}`;
}
