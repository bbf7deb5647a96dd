/** POST JSON and parse the envelope (what the matching benches send to a running app). */
export async function postJson(base: string, route: string, body: unknown): Promise<{ status: number; response: unknown; error: string }> {
  const r = await fetch(base + route, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = (await r.json()) as { response: unknown; error_message: string };
  return { status: r.status, response: j.response, error: j.error_message };
}
