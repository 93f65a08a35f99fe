// The first page's data, requested at start together with GET /api/v1/session instead of
// after it: the first render waits for one round trip, not two. A page takes a prefetched
// answer once, when it asks for the same request (same key) within 10 s of the start; an
// answer without data (401 before a login, an error) or a failed request is not used: the
// page asks again.
const TTL_MS = 10000;
const started = Date.now();
const pending = new Map<string, Promise<unknown>>();

export function prefetch(key: string, request: () => Promise<unknown>): void {
  const p = request();
  p.catch(() => {});
  pending.set(key, p);
}

export function fetchOnce<T extends { data?: unknown }>(key: string, request: () => Promise<T>): Promise<T> {
  const p = pending.get(key) as Promise<T> | undefined;
  pending.delete(key);
  if (!p || Date.now() - started > TTL_MS) return request();
  return p.then((r) => (r.data !== undefined ? r : request()), () => request());
}
