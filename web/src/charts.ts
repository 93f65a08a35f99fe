// Live metrics charts (host page and VM page): the history once from the API, then each
// new sample from the host's metrics stream (GET /api/v1/hosts/{name}/metrics/stream, SSE
// read with fetch like the events stream): no polling. Plain SVG, no chart library.
import { LitElement, html, svg, nothing } from "lit";
import { api } from "./api/client";
import { EventFeed } from "./events";
import { bytes } from "./format";
import { appendBounded, hostPoint, linePath, niceMax, vmCountersInSample, vmPoints, type HostSample, type Point, type VmCounters } from "./metrics";

const KEEP = 150;  // points per chart (5 min at the 2 s heartbeat)
const W = 300, H = 80;

// data-points is how many points the chart holds (at most KEEP: once the history fills it, a
// new sample replaces the oldest and the count stays); data-last-ms is the newest point's
// time, which moves with every sample drawn — what a test waits on to see the chart follow.
function lineChart(id: string, title: string, points: Point[], value: (p: Point) => number, max: number, fmt: (v: number) => string) {
  const values = points.map(value);
  const newest = values[values.length - 1];
  const last = newest === undefined ? "no sample yet" : fmt(newest);
  const label = `${title}: ${last} (last ${points.length} samples, scale 0 to ${fmt(max)})`;
  return html`<figure class="chart" data-chart=${id} data-points=${points.length} data-last-ms=${points[points.length - 1]?.t ?? 0}>
    <figcaption>${title} <strong>${last}</strong></figcaption>
    <svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label=${label}>
      ${svg`<line class="axis" x1="0" y1=${H} x2=${W} y2=${H}></line>
        <path class="line" d=${linePath(values, W, H, max)}></path>`}
    </svg>
    <small class="muted">0 – ${fmt(max)}</small>
  </figure>`;
}

const pct = (v: number) => `${(v * 100).toFixed(v < 0.1 ? 1 : 0)} %`;

export class MetricsCharts extends LitElement {
  static override properties = {
    host: { attribute: false },
    vm: { attribute: false },
    vcpus: { attribute: false },
    memTotal: { attribute: false },
    points: { state: true },
    live: { state: true },
    received: { state: true },
  };
  received = 0;  // samples drawn from the stream since the history (data-received)
  host = "";  // the host whose samples to read (the VM's host for a VM)
  vm = "";  // "" = the host's own charts
  vcpus = 0;  // VM: the CPU chart's top
  memTotal = 0;  // bytes: the memory chart's top (host total, VM memory size)
  points: Point[] = [];
  live = false;
  private counters: VmCounters[] = [];
  private feed: EventFeed | null = null;
  private started = "";

  protected override createRenderRoot() {
    return this;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.feed?.stop();
    this.feed = null;
    this.started = "";
  }

  protected override updated(): void {
    const key = `${this.host}/${this.vm}`;
    if (this.host && this.started !== key) {
      this.started = key;
      void this.start();
    }
  }

  private add(s: HostSample): void {
    const before = this.points[this.points.length - 1]?.t;
    if (this.vm) {
      const c = vmCountersInSample(s, this.vm);
      if (!c) return;
      this.counters = appendBounded(this.counters, c, KEEP + 1);
      this.points = vmPoints(this.counters);
    } else {
      this.points = appendBounded(this.points, hostPoint(s), KEEP);
    }
    if (this.points[this.points.length - 1]?.t !== before) this.received++;
  }

  private async start(): Promise<void> {
    this.feed?.stop();
    this.points = [];
    this.counters = [];
    this.received = 0;
    if (this.vm) {
      const { data } = await api.GET("/api/v1/vms/{name}/metrics", { params: { path: { name: this.vm }, query: { limit: KEEP + 1 } } });
      const samples = ((data as { samples?: Record<string, number>[] } | undefined)?.samples ?? []);
      this.counters = samples.map((s) => ({ t: s.time_ms ?? 0, cpuNs: s.cpu_time_ns ?? 0, rss: s.rss_bytes ?? 0 }));
      this.points = vmPoints(this.counters);
    } else {
      const { data } = await api.GET("/api/v1/hosts/{name}/metrics", { params: { path: { name: this.host }, query: { limit: KEEP } } });
      const samples = ((data as { samples?: HostSample[] } | undefined)?.samples ?? []);
      this.points = samples.map(hostPoint);
    }
    this.feed = new EventFeed({
      onEvent: (e) => this.add(e as unknown as HostSample),
      onState: (up) => (this.live = up),
    }, `/api/v1/hosts/${encodeURIComponent(this.host)}/metrics/stream`);
    this.feed.start();
  }

  override render() {
    if (!this.host) return nothing;
    const cpuMax = this.vm ? niceMax(this.points.map((p) => p.cpu), this.vcpus || undefined) : 1;
    const memMax = niceMax(this.points.map((p) => p.mem), this.memTotal || undefined);
    const cpuFmt = this.vm ? (v: number) => `${v.toFixed(2)} vCPU` : pct;
    return html`<div class="charts" data-live=${this.live ? "yes" : "no"} data-received=${this.received}>
      ${lineChart("cpu", this.vm ? "CPU used" : "CPU busy", this.points, (p) => p.cpu, cpuMax, cpuFmt)}
      ${lineChart("mem", this.vm ? "Memory (QEMU resident)" : "Memory used", this.points, (p) => p.mem, memMax, (v) => bytes(v))}
      <p class="muted">${this.live ? "Live: a sample every heartbeat." : "Not live (reconnecting)."}</p>
    </div>`;
  }
}
customElements.define("strata-metrics-charts", MetricsCharts);
