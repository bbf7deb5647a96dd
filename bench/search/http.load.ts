/** `conc` clients each POSTing /search bodies back to back for `seconds`: latency percentiles and throughput. */
export async function searchLoad(base: string, bodies: string[], conc: number, seconds: number): Promise<{ p50: number; p95: number; p99: number; qps: number }> {
  const lat: number[] = [];
  const until = performance.now() + seconds * 1000;
  let i = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (performance.now() < until) {
        const s = performance.now();
        const r = await fetch(`${base}/search`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: bodies[i++ % bodies.length] });
        await r.arrayBuffer();
        if (r.status !== 200) throw new Error(`search ${r.status}`);
        lat.push(performance.now() - s);
      }
    }),
  );
  const secs = (performance.now() - t) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (x: number) => lat[Math.min(lat.length - 1, Math.floor(x * lat.length))]!;
  return { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), qps: lat.length / secs };
}
