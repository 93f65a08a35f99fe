// Dashboard, hosts and VMs. Each page loads its lists once and again (debounced) when a
// live event arrives: no polling.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { pageSelection, runEach, summarize, toggleAll, type ItemResult } from "./bulk";
import { parsePairs } from "./wizard";
import { fetchOnce, prefetch } from "./prefetch";
import { api, errorText, type DatastoreUse, type Host, type HostUsage, type StrataEvent, type Summary, type Vm } from "./api/client";
import {
  bytes,
  canOperate,
  hostAlert,
  hostVmListQuery,
  migrateBody,
  mib,
  percent,
  sortedCounts,
  time,
  vmState,
  vmListFilterFromUrl,
  vmListQuery,
} from "./format";

import { LivePage } from "./live-page";
import { VmTablePage, fetchVmPage, vmPageKey } from "./vm-table";

export { LivePage };

const requestHosts = () => api.GET("/api/v1/hosts");
const requestSummary = () => api.GET("/api/v1/summary");

export const requestHost = (name: string) => api.GET("/api/v1/hosts/{name}", { params: { path: { name } } });

// Called once at start, before the session is known: the requests the page at this URL
// will make first (prefetch.ts). `name`: the host of a host page.
export function prefetchFor(page: string, search: string, name = ""): void {
  if (page === "dashboard" || page === "hosts" || page === "inventory" || page === "cluster") prefetch("summary", requestSummary);
  if (page === "host" && name) {
    prefetch(`host:${name}`, () => requestHost(name));
    prefetch("summary", requestSummary);
    const { query, error } = hostVmListQuery(name, vmListFilterFromUrl(search), "");
    if (!error) prefetch(vmPageKey(query), () => fetchVmPage(query));
  }
  if (page === "vms") {
    prefetch("hosts", requestHosts);
    const { query, error } = vmListQuery(vmListFilterFromUrl(search), "");
    if (!error) prefetch(vmPageKey(query), () => fetchVmPage(query));
  }
}

// The dashboard's numbers, computed on the server (counts by the database, allocations from
// the scheduler's cache): right at any number of VMs, one request.
export async function loadSummary(): Promise<Summary> {
  const { data, error } = await fetchOnce("summary", requestSummary);
  if (!data) throw new Error(errorText(error, "cannot load the summary"));
  return data;
}

export async function listHosts(): Promise<Host[]> {
  const { data, error } = await fetchOnce("hosts", requestHosts);
  if (!data) throw new Error(errorText(error, "cannot list hosts"));
  return data.hosts ?? [];
}

export function stateBadge(state: string | undefined) {
  const s = state ?? "unknown";
  return html`<span class="badge state-${s}">${s}</span>`;
}

export function capacity(label: string, used: number, total: number, text: string, what = "allocated") {
  const pct = percent(used, total);
  return html`<div class="capacity">
    <span class="cap-label">${label}</span>
    <meter min="0" max="100" low="70" high="90" optimum="0" .value=${Math.min(pct, 100)}
      aria-label="${label} ${what}: ${pct}%"></meter>
    <span class="cap-text">${text} (${pct}%)</span>
  </div>`;
}

// A bar per datastore: used of total bytes, as the agents report them (GET /api/v1/summary).
export function datastoreBars<T extends DatastoreUse>(list: T[], hostsOf?: (d: T) => number | undefined) {
  return list.map((d) => {
    const hosts = hostsOf?.(d);
    return html`<div class="datastore" data-datastore=${d.name}>${capacity(`Datastore ${d.name}`, d.used_bytes, d.total_bytes,
      `${d.name}: ${bytes(d.used_bytes)} / ${bytes(d.total_bytes)} used${hosts === undefined ? "" : `, ${hosts} host${hosts === 1 ? "" : "s"}`}`, "used")}</div>`;
  });
}

function hostRow(h: HostUsage) {
  const vcpus = h.allocated_vcpus, memory = h.allocated_memory_mib;
  return html`<tr data-host=${h.name ?? ""}>
    <th scope="row"><a href="/hosts/${h.name ?? ""}">${h.name}</a></th>
    <td>${stateBadge(h.state)}${h.maintenance ? html` <span class="badge">maintenance</span>` : nothing}</td>
    <td data-cluster=${h.cluster ?? ""}><a href="/clusters/${h.cluster || "default"}">${h.cluster || "default"}</a></td>
    <td>${capacity("CPU", vcpus, h.cpu_threads ?? 0, `${vcpus} / ${h.cpu_threads ?? 0} vCPU`)}</td>
    <td>${capacity("Memory", memory, h.memory_mib ?? 0, `${mib(memory)} / ${mib(h.memory_mib)}`)}</td>
    <td>${h.vms}</td>
    <td>${h.datastores.length ? datastoreBars(h.datastores) : html`<span class="muted">none</span>`}</td>
    <td>${h.accelerator ?? "-"}</td>
    <td class="labels">${Object.entries(h.labels ?? {}).map(([k, v]) => html`<span class="label">${k}=${v}</span>`)}</td>
  </tr>`;
}

function hostTable(hosts: HostUsage[]) {
  if (hosts.length === 0) return html`<p>No hosts yet. Enroll one with <code>strata host enroll</code>.</p>`;
  return html`<table class="grid" aria-label="Hosts">
    <thead><tr><th scope="col">Host</th><th scope="col">State</th><th scope="col">Cluster</th><th scope="col">CPU allocated</th>
      <th scope="col">Memory allocated</th><th scope="col">VMs</th><th scope="col">Datastores</th><th scope="col">Accelerator</th><th scope="col">Labels</th></tr></thead>
    <tbody>${repeat(hosts, (h) => h.name ?? "", (h) => hostRow(h))}</tbody>
  </table>`;
}

class DashboardPage extends LivePage {
  static override properties = { ...LivePage.properties, summary: { state: true } };
  summary: Summary | undefined;

  // Hosts, VMs and tasks are what it counts (the live events list needs no reload).
  protected override wants(e: StrataEvent | undefined): boolean {
    return /^(host|vm|task)\//.test(e?.target ?? "");
  }

  protected async load(): Promise<void> {
    this.summary = await loadSummary();
  }

  override render() {
    const s = this.summary;
    const hosts = s?.hosts.items ?? [];
    const tasks = s?.tasks.recent ?? [];
    const cap = s?.capacity;
    const alerts = [
      ...hosts.filter((h) => hostAlert(h)).map((h) => `Host ${h.name} is ${hostAlert(h)}`),
      ...tasks.filter((t) => t.state === "failed").map((t) => `Task ${t.kind} on ${t.target} failed: ${t.message ?? ""}`),
    ];
    return html`
      <h1>Dashboard</h1>
      ${this.renderError()}
      ${alerts.length
        ? html`<section aria-labelledby="alerts-h" class="alerts"><h2 id="alerts-h">Alerts</h2>
            <ul>${alerts.map((a) => html`<li><span role="alert">${a}</span></li>`)}</ul></section>`
        : nothing}
      <div class="cols">
        <section aria-labelledby="hosts-h" class="wide">
          <h2 id="hosts-h">Hosts</h2>
          ${this.loaded ? hostTable(hosts) : html`<p role="status">Loading…</p>`}
        </section>
        <section aria-labelledby="vmstate-h">
          <h2 id="vmstate-h">VMs by state</h2>
          <dl class="counts">
            <div data-count="total"><dt>total</dt><dd>${s?.vms.total ?? 0}</dd></div>
            ${sortedCounts(s?.vms.by_state).map(([st, n]) => html`<div data-count=${st}><dt>${stateBadge(st)}</dt><dd>${n}</dd></div>`)}
          </dl>
          ${cap
            ? html`<h2 id="capacity-h">Capacity</h2>
              <div class="fleet-capacity">
                ${capacity("CPU", cap.allocated_vcpus, cap.schedulable_vcpus,
                  `${cap.allocated_vcpus} / ${cap.schedulable_vcpus} vCPU (${cap.vcpus} threads × ${cap.cpu_overcommit})`)}
                ${capacity("Memory", cap.allocated_memory_mib, cap.schedulable_memory_mib,
                  `${mib(cap.allocated_memory_mib)} / ${mib(cap.schedulable_memory_mib)}`)}
              </div>`
            : nothing}
          ${s && s.datastores.items.length
            ? html`<h2 id="datastores-h">Datastores</h2>
              <div class="fleet-datastores">
                ${capacity("Storage", s.datastores.used_bytes, s.datastores.total_bytes,
                  `${bytes(s.datastores.used_bytes)} / ${bytes(s.datastores.total_bytes)} used in all`, "used")}
                ${datastoreBars(s.datastores.items, (d) => d.hosts)}
              </div>`
            : nothing}
        </section>
      </div>
      <div class="cols">
        <section aria-labelledby="tasks-h">
          <h2 id="tasks-h">Recent tasks</h2>
          ${s ? html`<p class="muted" data-tasks-running=${s.tasks.running}>${s.tasks.running} running, ${s.tasks.pending} pending, ${s.tasks.failed} failed in all</p>` : nothing}
          <table class="grid" aria-label="Recent tasks" tabindex="0">
            <thead><tr><th scope="col">Task</th><th scope="col">Target</th><th scope="col">State</th><th scope="col">Updated</th></tr></thead>
            <tbody>${repeat(tasks, (t) => t.id ?? "", (t) => html`<tr><td>${t.kind}</td><td>${t.target}</td>
              <td>${stateBadge(t.state)}${t.state === "running" ? html` <progress max="100" .value=${t.progress ?? 0} aria-label="progress"></progress>` : nothing}</td>
              <td>${time(t.updated_ms)}</td></tr>`)}</tbody>
          </table>
        </section>
        <section aria-labelledby="events-h">
          <h2 id="events-h">Live events</h2>
          <ol class="events" tabindex="0" aria-live="polite" aria-label="Live events">
            ${repeat(this.events.slice(0, 15), (e, i) => e.seq ?? `i${i}`, (e) => html`<li><time>${time(e.time_ms)}</time>
              <span class="action">${e.action}</span> <span>${e.target}</span>
              <span class="result ${e.result === "ok" ? "" : "bad"}">${e.result}</span></li>`)}
          </ol>
          ${this.events.length === 0 ? html`<p class="muted">Waiting for events…</p>` : nothing}
        </section>
      </div>
    `;
  }
}
customElements.define("strata-dashboard", DashboardPage);

class HostsPage extends LivePage {
  static override properties = { ...LivePage.properties, hosts: { state: true } };
  hosts: HostUsage[] = [];

  protected override wants(e: StrataEvent | undefined): boolean {
    return /^(host|vm)\//.test(e?.target ?? "");
  }

  // The hosts with what their VMs hold, from the summary (no VM list: right at any size).
  protected async load(): Promise<void> {
    this.hosts = (await loadSummary()).hosts.items;
  }

  override render() {
    return html`<h1>Hosts</h1>${this.renderError()}
      ${this.loaded ? hostTable(this.hosts) : html`<p role="status">Loading…</p>`}`;
  }
}
customElements.define("strata-hosts", HostsPage);

// The VM list pages through the API (limit + after cursor, keyset: fast at any size) and
// filters on the server by host and label; the quick filter narrows the page shown.
class VmsPage extends VmTablePage {
  static override properties = {
    ...VmTablePage.properties,
    hosts: { state: true },
    quick: { state: true },
    pending: { state: true },
    message: { state: true },
    selected: { state: true },
    results: { state: true },
    resultTitle: { state: true },
    bulkBusy: { state: true },
    bulkLabel: { state: true },
    bulkTarget: { state: true },
  };
  bulkLabel = "";
  bulkTarget = "";  // migrate selected: "" = the scheduler's choice per VM
  selected = new Set<string>();
  results: ItemResult[] = [];
  resultTitle = "";
  bulkBusy = false;
  hosts: string[] = [];
  quick = "";  // narrows the page shown, in the browser
  pending = new Set<string>();
  message = "";

  override connectedCallback(): void {
    super.connectedCallback();
    void listHosts().then((h) => { this.hosts = h.map((x) => x.name ?? "").filter(Boolean); }, () => {});
  }

  protected query() {
    return vmListQuery(this.filter, this.pager.cursor);
  }

  protected listFailed(): string {
    return "cannot list VMs";
  }

  protected override listChanged(): void {
    this.selected = new Set();
  }

  private async act(vm: Vm, action: "start" | "stop"): Promise<void> {
    const name = vm.name ?? "";
    this.pending = new Set([...this.pending, name]);
    const path = action === "start" ? "/api/v1/vms/{name}/start" : "/api/v1/vms/{name}/stop";
    const { error } = await api.POST(path, { params: { path: { name } } });
    const next = new Set(this.pending);
    next.delete(name);
    this.pending = next;
    this.message = error ? `${action} ${name}: ${errorText(error)}` : `${action} ${name}: accepted`;
    void this.refresh();
  }

  private selectAll(shown: string[]) {
    const state = pageSelection(this.selected, shown);
    return html`<input type="checkbox" aria-label="Select all VMs on this page" .checked=${state === "all"}
      .indeterminate=${state === "some"} ?disabled=${shown.length === 0}
      @change=${() => { this.selected = toggleAll(this.selected, shown); }} />`;
  }

  private toggle(name: string, on: boolean): void {
    const next = new Set(this.selected);
    if (on) next.add(name);
    else next.delete(name);
    this.selected = next;
  }

  // One request per selected VM (4 at a time); each VM's result is listed.
  private async bulk(action: BulkAction): Promise<void> {
    const names = [...this.selected].sort();
    if (names.length === 0) return;
    let label: [string, string] | null = null;
    if (action === "add label") {
      const parsed = parsePairs(this.bulkLabel, "labels");
      const pairs = Object.entries(parsed.pairs);
      if (parsed.error || pairs.length !== 1) {
        this.resultTitle = "";
        this.results = [];
        this.message = `add label: ${parsed.error?.message ?? "enter one key=value"}`;
        return;
      }
      label = pairs[0]!;
    }
    this.bulkBusy = true;
    this.results = await runEach(names, 4, async (name) => {
      const params = { params: { path: { name } } };
      let r: { error?: unknown };
      switch (action) {
        case "start": r = await api.POST("/api/v1/vms/{name}/start", params); break;
        case "shut down": r = await api.POST("/api/v1/vms/{name}/stop", { ...params, body: { force: false } }); break;
        case "force off": r = await api.POST("/api/v1/vms/{name}/stop", { ...params, body: { force: true } }); break;
        case "delete": r = await api.DELETE("/api/v1/vms/{name}", params); break;
        case "migrate": r = await api.POST("/api/v1/vms/{name}/migrate", { ...params, body: migrateBody(this.bulkTarget) }); break;
        case "add label": r = await api.PATCH("/api/v1/vms/{name}", { ...params, body: { labels: { [label![0]]: label![1] } } }); break;
      }
      return r.error ? { ok: false, message: errorText(r.error) } : { ok: true, message: "accepted" };
    });
    const title = label ? `add label ${label[0]}=${label[1]}` : action === "migrate" && this.bulkTarget ? `migrate to ${this.bulkTarget}` : action;
    this.resultTitle = summarize(title, this.results);
    this.bulkBusy = false;
    if (action === "delete") this.selected = new Set();
    void this.refresh();
  }

  private confirmBulkDelete(): void {
    this.querySelector<HTMLDialogElement>("#bulk-delete-dialog")?.showModal();
  }

  private async closeBulkDelete(yes: boolean): Promise<void> {
    this.querySelector<HTMLDialogElement>("#bulk-delete-dialog")?.close();
    if (yes) await this.bulk("delete");
  }

  private renderBulk() {
    const n = this.selected.size;
    const names = [...this.selected].sort();
    return html`<div class="toolbar" role="toolbar" aria-label="Selected VMs">
        <span role="status">${n} selected</span>
        <button type="button" ?disabled=${n === 0 || this.bulkBusy} @click=${() => this.bulk("start")}>Start selected</button>
        <button type="button" class="secondary" ?disabled=${n === 0 || this.bulkBusy} @click=${() => this.bulk("shut down")}>Shut down selected</button>
        <button type="button" class="secondary" ?disabled=${n === 0 || this.bulkBusy} @click=${() => this.bulk("force off")}>Force off selected</button>
        <button type="button" class="danger" ?disabled=${n === 0 || this.bulkBusy} @click=${() => this.confirmBulkDelete()}>Delete selected…</button>
        <label for="bulk-label">New label</label>
        <input id="bulk-label" placeholder="key=value" .value=${this.bulkLabel} spellcheck="false"
          @input=${(e: InputEvent) => { this.bulkLabel = (e.target as HTMLInputElement).value; }} />
        <button type="button" class="secondary" ?disabled=${n === 0 || this.bulkBusy || !this.bulkLabel.trim()} @click=${() => this.bulk("add label")}>Add label to selected</button>
        <label for="bulk-target">Migrate to</label>
        <select id="bulk-target" @change=${(e: Event) => { this.bulkTarget = (e.target as HTMLSelectElement).value; }}>
          <option value="" ?selected=${this.bulkTarget === ""}>the scheduler's choice</option>
          ${this.hosts.map((h) => html`<option value=${h} ?selected=${this.bulkTarget === h}>${h}</option>`)}
        </select>
        <button type="button" class="secondary" ?disabled=${n === 0 || this.bulkBusy} @click=${() => this.bulk("migrate")}>Migrate selected</button>
      </div>
      <dialog id="bulk-delete-dialog" aria-labelledby="bulk-delete-title">
        <h2 id="bulk-delete-title">Delete ${n} VM${n === 1 ? "" : "s"}?</h2>
        <p>${names.join(", ")}: each is stopped and its disks are removed from its host. This cannot be undone.</p>
        <div class="toolbar">
          <button type="button" class="danger" @click=${() => this.closeBulkDelete(true)}>Delete ${n} VM${n === 1 ? "" : "s"}</button>
          <button type="button" class="secondary" @click=${() => this.closeBulkDelete(false)}>Cancel</button>
        </div>
      </dialog>
      ${this.results.length
        ? html`<section aria-labelledby="bulk-results-h" class="bulk-results">
            <h2 id="bulk-results-h">${this.resultTitle}</h2>
            <ul aria-label="Results per VM">${this.results.map((r) => html`<li data-result=${r.name} class=${r.ok ? "ok" : "bad"}>
              <strong>${r.name}</strong>: <span class=${r.ok ? "notice" : "error-text"}>${r.ok ? "" : "failed: "}${r.message}</span></li>`)}</ul>
            <button type="button" class="secondary" @click=${() => { this.results = []; }}>Dismiss</button>
          </section>`
        : nothing}`;
  }

  override render() {
    const operate = canOperate(this.role);
    const f = this.quick.toLowerCase();
    const shown = this.vms.filter((v) => !f || (v.name ?? "").includes(f) || vmState(v).includes(f) || (v.host ?? "").includes(f));
    return html`<h1>Virtual machines</h1>${this.renderError()}
      ${operate ? html`<p><a class="button" href="/create">Create VM…</a></p>` : nothing}
      ${this.renderFilters({
        ids: "vm", label: "VM list filters", hosts: this.hosts,
        extra: html`<label for="vm-filter">Filter this page</label>
          <input id="vm-filter" type="search" placeholder="name, state or host" .value=${this.quick}
            @input=${(e: InputEvent) => { this.quick = (e.target as HTMLInputElement).value; }} />`,
      })}
      ${this.message ? html`<p class="notice" role="status">${this.message}</p>` : nothing}
      ${operate && this.loaded ? this.renderBulk() : nothing}
      ${!this.loaded
        ? html`<p role="status">Loading…</p>`
        : html`<table class="grid" aria-label="Virtual machines">
        <thead><tr>${operate ? html`<th scope="col" class="select">${this.selectAll(shown.map((v) => v.name ?? ""))}</th>` : nothing}${this.renderNameHeader()}<th scope="col">State</th><th scope="col">Desired</th><th scope="col">Host</th>
          <th scope="col">vCPU</th><th scope="col">Memory</th>${operate ? html`<th scope="col">Actions</th>` : nothing}</tr></thead>
        <tbody>${repeat(shown, (vm) => vm.name ?? "", (vm) => {
          const spec = (vm.spec ?? {}) as Record<string, unknown>;
          const busy = this.pending.has(vm.name ?? "");
          return html`<tr data-vm=${vm.name ?? ""}>
            ${operate ? html`<td class="select"><input type="checkbox" aria-label="Select ${vm.name}" .checked=${this.selected.has(vm.name ?? "")}
              @change=${(e: Event) => this.toggle(vm.name ?? "", (e.target as HTMLInputElement).checked)} /></td>` : nothing}
            <th scope="row"><a href="/vms/${vm.name ?? ""}">${vm.name}</a></th>
            <td>${stateBadge(vmState(vm))}${vm.status?.last_error ? html` <span class="error-text" title=${vm.status.last_error}>!</span>` : nothing}</td>
            <td>${vm.desired_state}</td><td>${vm.host ? html`<a href="/hosts/${vm.host}">${vm.host}</a>` : "-"}</td>
            <td>${typeof spec.vcpus === "number" ? spec.vcpus : "-"}</td>
            <td>${mib(typeof spec.memory_mib === "number" ? spec.memory_mib : undefined)}</td>
            ${operate
              ? html`<td class="actions">
                  <button type="button" ?disabled=${busy || vm.desired_state === "running"}
                    aria-label="Start ${vm.name}" @click=${() => this.act(vm, "start")}>Start</button>
                  <button type="button" class="secondary" ?disabled=${busy || vm.desired_state === "stopped"}
                    aria-label="Stop ${vm.name}" @click=${() => this.act(vm, "stop")}>Stop</button></td>`
              : nothing}
          </tr>`;
        })}</tbody>
      </table>
      ${this.renderPager("VM list pages", `Page ${this.pager.page} · ${this.vms.length} VMs${f ? ` (${shown.length} match)` : ""}`)}`}`;
  }
}
customElements.define("strata-vms", VmsPage);

type BulkAction = "start" | "shut down" | "force off" | "delete" | "add label" | "migrate";
