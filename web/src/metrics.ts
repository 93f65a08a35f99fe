// Metrics charts' own logic (unit-tested in test/unit): samples -> points, points -> an
// SVG path. The charts are plain SVG drawn by Lit (charts.ts): two line charts per page
// need no chart library (see docs/internals/web.md).

export interface Point {
  t: number;  // ms since the epoch
  cpu: number;  // host: busy fraction of all its CPUs; VM: CPUs' worth busy (1 = one vCPU)
  mem: number;  // bytes: host used (total - available), VM the QEMU process's RSS
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
// protobuf's JSON has 64-bit integers as strings and leaves zeros out
const n = (v: unknown): number => (typeof v === "number" ? v : typeof v === "string" && v !== "" ? Number(v) || 0 : 0);

export interface HostSample {
  time_ms?: number;
  data?: unknown;
}

// Host samples (GET /api/v1/hosts/{name}/metrics or the stream) -> points.
export function hostPoint(s: HostSample): Point {
  const h = obj(obj(s.data).host);
  const total = n(h.memory_total_bytes);
  return { t: n(s.time_ms), cpu: n(h.cpu_busy), mem: Math.max(0, total - n(h.memory_available_bytes)) };
}

export interface VmCounters {
  t: number;
  cpuNs: number;
  rss: number;
}

// The VM's counters in a host sample (the stream), or undefined when it is not in it.
export function vmCountersInSample(s: HostSample, vm: string): VmCounters | undefined {
  const entry = (Array.isArray(obj(s.data).vms) ? (obj(s.data).vms as unknown[]) : []).map(obj).find((v) => v.name === vm);
  if (!entry) return undefined;
  const st = obj(entry.stats);
  return { t: n(s.time_ms), cpuNs: n(st.cpu_time_ns), rss: n(st.rss_bytes) };
}

// Counters -> points: CPU is the CPU time used between two samples over the wall time
// between them (a restarted QEMU, whose counter went back, starts again from there).
export function vmPoints(counters: VmCounters[]): Point[] {
  const out: Point[] = [];
  for (let i = 1; i < counters.length; i++) {
    const a = counters[i - 1]!, b = counters[i]!;
    const dt = b.t - a.t;
    if (dt <= 0) continue;
    const used = b.cpuNs - a.cpuNs;
    out.push({ t: b.t, cpu: used >= 0 ? used / (dt * 1e6) : 0, mem: b.rss });
  }
  return out;
}

// Appends keeping at most `max` items (the newest), and keeps time order (a sample older
// than the last one, e.g. one the history already had, is dropped).
export function appendBounded<T extends { t: number }>(list: T[], item: T, max: number): T[] {
  const last = list[list.length - 1];
  if (last && item.t <= last.t) return list;
  const next = [...list, item];
  return next.length > max ? next.slice(next.length - max) : next;
}

// An SVG path through the values, x evenly spread over width, y from 0 (bottom) to max (top).
export function linePath(values: number[], width: number, height: number, max: number): string {
  if (values.length === 0 || max <= 0) return "";
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const y = (v: number) => height - (Math.min(Math.max(v, 0), max) / max) * height;
  return values
    .map((v, i) => `${i === 0 ? "M" : "L"}${(i * step).toFixed(1)},${y(v).toFixed(1)}`)
    .join(" ");
}

// A y-axis top that keeps the line readable: the capacity when known and not exceeded (a
// VM's QEMU process holds more than its guest's memory), else the largest value rounded up
// to 1, 2 or 5 times a power of ten.
export function niceMax(values: number[], capacity?: number): number {
  const m = Math.max(0, ...values);
  if (capacity && capacity > 0 && m <= capacity) return capacity;
  if (m <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(m));
  for (const f of [1, 2, 5, 10]) if (m <= f * p) return f * p;
  return 10 * p;
}
