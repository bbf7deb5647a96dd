/** A precision/recall curve as a small standalone SVG: recall on x, precision on y, both 0..1. */
export interface CurveSeries { name: string; points: Array<{ threshold: number; precision: number; recall: number }> }

const COLOURS = ['#1f6fb2', '#d9534f', '#2a9d5c', '#8a5bd6', '#e08a00', '#555'];
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderPrCurve(series: CurveSeries[], opts: { title: string; threshold?: number; yMin?: number }): string {
  const W = 640, H = 460, L = 64, R = 170, T = 40, B = 56;
  const yMin = opts.yMin ?? 0;
  const x = (r: number) => L + r * (W - L - R);
  const y = (p: number) => T + (1 - (p - yMin) / (1 - yMin)) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${W / 2 - R / 2 + L / 2}" y="24" text-anchor="middle" font-size="15" font-weight="600">${esc(opts.title)}</text>`);
  for (let i = 0; i <= 10; i++) {
    const r = i / 10;
    const p = yMin + (i / 10) * (1 - yMin);
    parts.push(`<line x1="${x(r)}" y1="${T}" x2="${x(r)}" y2="${H - B}" stroke="#eee"/><text x="${x(r)}" y="${H - B + 16}" text-anchor="middle" font-size="11">${r.toFixed(1)}</text>`);
    parts.push(`<line x1="${L}" y1="${y(p)}" x2="${W - R}" y2="${y(p)}" stroke="#eee"/><text x="${L - 6}" y="${y(p) + 4}" text-anchor="end" font-size="11">${p.toFixed(2)}</text>`);
  }
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 14}" text-anchor="middle" font-size="13">recall</text>`);
  parts.push(`<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle" font-size="13">precision</text>`);
  series.forEach((s, i) => {
    const c = COLOURS[i % COLOURS.length]!;
    const pts = s.points.filter((p) => p.precision >= yMin);
    parts.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${x(p.recall).toFixed(1)},${y(p.precision).toFixed(1)}`).join(' ')}"/>`);
    const op = opts.threshold === undefined ? undefined : s.points.reduce((a, b) => (Math.abs(b.threshold - opts.threshold!) < Math.abs(a.threshold - opts.threshold!) ? b : a), s.points[0]!);
    if (op && op.precision >= yMin) parts.push(`<circle cx="${x(op.recall)}" cy="${y(op.precision)}" r="4.5" fill="${c}" stroke="#000"/>`);
    parts.push(`<line x1="${W - R + 14}" y1="${T + 12 + i * 20}" x2="${W - R + 34}" y2="${T + 12 + i * 20}" stroke="${c}" stroke-width="3"/><text x="${W - R + 40}" y="${T + 16 + i * 20}" font-size="12">${esc(s.name)}</text>`);
  });
  if (opts.threshold !== undefined) parts.push(`<circle cx="${W - R + 24}" cy="${T + 12 + series.length * 20}" r="4.5" fill="#fff" stroke="#000"/><text x="${W - R + 40}" y="${T + 16 + series.length * 20}" font-size="12">threshold ${opts.threshold}</text>`);
  parts.push(`<text x="${W - R + 14}" y="${T + 44 + series.length * 20}" font-size="11" fill="#555">points: match threshold</text><text x="${W - R + 14}" y="${T + 58 + series.length * 20}" font-size="11" fill="#555">0 to 1 in steps of 0.025</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui,sans-serif">${parts.join('')}</svg>\n`;
}
