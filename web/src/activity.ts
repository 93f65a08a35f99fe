// The tasks page (/tasks: every task newest first, filtered by state on the server, paged) and the events
// page (/events: the event and audit log newest first, all of it or one target's, paged on
// the server; action, actor and result narrow the page shown). Both reload on the live
// events they show (page 1 only: later pages do not change): no polling.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, errorText, type Host, type StrataEvent, type Task, type Vm } from "./api/client";
import { CursorPager, badResult, time, vmState } from "./format";
import { eventMatches, SEARCH_IMAGES, searchListQueries, searchMatches, searchTerm, targetHref, type EventFilter } from "./inventory";
import { LivePage } from "./live-page";
import { stateBadge } from "./pages";

function targetLink(target: string, text: string) {
  const href = targetHref(target);
  return href ? html`<a href=${href}>${text}</a>` : text;
}

const TASK_STATES = ["", "pending", "running", "succeeded", "failed"];

function setUrl(params: Record<string, string>): void {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
  const s = q.toString();
  history.replaceState(null, "", location.pathname + (s ? `?${s}` : ""));
}

function pager(p: CursorPager, label: string, status: string, turn: (next: boolean) => void) {
  return html`<nav class="toolbar pager" aria-label=${label}>
    <button type="button" class="secondary" ?disabled=${!p.hasPrevious} @click=${() => turn(false)}>Previous page</button>
    <span role="status">${status}</span>
    <button type="button" class="secondary" ?disabled=${!p.hasNext} @click=${() => turn(true)}>Next page</button>
  </nav>`;
}

class TasksPage extends LivePage {
  static override properties = { ...LivePage.properties, tasks: { state: true }, state: { state: true } };
  tasks: Task[] = [];
  state = new URLSearchParams(location.search).get("state") ?? "";
  private readonly pager = new CursorPager();

  protected override wants(e: StrataEvent | undefined): boolean {
    return this.pager.page === 1 && (e?.target ?? "").startsWith("task/");
  }

  protected async load(): Promise<void> {
    const query: Record<string, string | number> = { limit: 50, order: "newest" };
    if (this.state) query.state = this.state;
    if (this.pager.cursor) query.after = this.pager.cursor;
    const { data, error } = await api.GET("/api/v1/tasks", { params: { query } });
    if (!data) throw new Error(errorText(error, "cannot list tasks"));
    this.tasks = data.tasks ?? [];
    this.pager.loaded(data.next);
  }

  private filter(state: string): void {
    this.state = state;
    setUrl({ state });
    this.pager.reset();
    void this.refresh();
  }

  private turn(next: boolean): void {
    if (next) this.pager.next();
    else this.pager.previous();
    void this.refresh();
  }

  override render() {
    return html`<h1>Tasks</h1>${this.renderError()}
      <form class="toolbar" aria-label="Task filters" @submit=${(e: SubmitEvent) => e.preventDefault()}>
        <label for="task-state">State</label>
        <select id="task-state" @change=${(e: Event) => this.filter((e.target as HTMLSelectElement).value)}>
          ${TASK_STATES.map((s) => html`<option value=${s} ?selected=${s === this.state}>${s || "any"}</option>`)}
        </select>
      </form>
      ${!this.loaded ? html`<p role="status">Loading…</p>` : html`
      <table class="grid" aria-label="Tasks" tabindex="0">
        <thead><tr><th scope="col">Task</th><th scope="col">Target</th><th scope="col">State</th><th scope="col">Message</th>
          <th scope="col">Created</th><th scope="col">Updated</th></tr></thead>
        <tbody>${repeat(this.tasks, (t) => t.id ?? "", (t) => html`<tr data-task=${t.id ?? ""} data-kind=${t.kind ?? ""}>
          <th scope="row">${t.kind}</th>
          <td>${targetLink(`${t.target_kind ?? ""}/${t.target ?? ""}`, t.target ?? "")}</td>
          <td>${stateBadge(t.state)}${t.state === "running" ? html` <progress max="100" .value=${t.progress ?? 0} aria-label="progress"></progress>` : nothing}</td>
          <td>${t.message ?? ""}</td><td>${time(t.created_ms)}</td><td>${time(t.updated_ms)}</td></tr>`)}</tbody>
      </table>
      ${this.tasks.length === 0 ? html`<p class="muted">No tasks${this.state ? ` in state ${this.state}` : ""}.</p>` : nothing}
      ${pager(this.pager, "Task pages", `Page ${this.pager.page} · ${this.tasks.length} tasks`, (n) => this.turn(n))}`}`;
  }
}
customElements.define("strata-tasks", TasksPage);

class EventsPage extends LivePage {
  static override properties = { ...LivePage.properties, list: { state: true }, filter: { state: true } };
  list: StrataEvent[] = [];
  filter: EventFilter = (() => {
    const q = new URLSearchParams(location.search);
    return { target: q.get("target") ?? "", action: q.get("action") ?? "", actor: q.get("actor") ?? "", result: q.get("result") ?? "" };
  })();
  private readonly pager = new CursorPager();

  protected override wants(e: StrataEvent | undefined): boolean {
    return this.pager.page === 1 && (!this.filter.target || e?.target === this.filter.target);
  }

  // Newest first: the target's events, or every event (before=0: from the newest).
  protected async load(): Promise<void> {
    const query: Record<string, string | number> = { limit: 100, before: Number(this.pager.cursor || 0) };
    if (this.filter.target.trim()) query.target = this.filter.target.trim();
    const { data, error } = await api.GET("/api/v1/events", { params: { query } });
    if (!data) throw new Error(errorText(error, "cannot read the events"));
    this.list = data.events ?? [];
    this.pager.loaded(data.next === null || data.next === undefined ? null : String(data.next));
  }

  private apply(ev: SubmitEvent): void {
    ev.preventDefault();
    const f = new FormData(ev.target as HTMLFormElement);
    const get = (k: string) => String(f.get(k) ?? "").trim();
    this.filter = { target: get("target"), action: get("action"), actor: get("actor"), result: get("result") };
    setUrl({ ...this.filter });
    this.pager.reset();
    void this.refresh();
  }

  private turn(next: boolean): void {
    if (next) this.pager.next();
    else this.pager.previous();
    void this.refresh();
  }

  override render() {
    const f = this.filter;
    const shown = this.list.filter((e) => eventMatches(e, f));
    return html`<h1>Events</h1>${this.renderError()}
      <form class="toolbar" aria-label="Event filters" @submit=${(e: SubmitEvent) => this.apply(e)}>
        <label for="ev-target">Target</label>
        <input id="ev-target" name="target" type="search" placeholder="vm/web-1, host/h1" .value=${f.target} spellcheck="false" />
        <label for="ev-action">Action</label>
        <input id="ev-action" name="action" type="search" placeholder="vm.start, token." .value=${f.action} spellcheck="false" />
        <label for="ev-actor">Actor</label>
        <input id="ev-actor" name="actor" type="search" placeholder="token name, agent:…" .value=${f.actor} spellcheck="false" />
        <label for="ev-result">Result</label>
        <select id="ev-result" name="result">
          ${["", "ok", "failed"].map((r) => html`<option value=${r} ?selected=${r === f.result}>${r || "any"}</option>`)}
        </select>
        <button type="submit">Apply</button>
      </form>
      <p class="muted">Newest first, 100 a page${f.target ? ` of ${f.target}` : ""} from the server; action, actor and result narrow the page shown.</p>
      ${!this.loaded ? html`<p role="status">Loading…</p>` : html`
      <table class="grid" aria-label="Events" tabindex="0">
        <thead><tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Action</th><th scope="col">Target</th>
          <th scope="col">Actor</th><th scope="col">Result</th><th scope="col">Message</th></tr></thead>
        <tbody>${repeat(shown, (e, i) => e.seq ?? `i${i}`, (e) => html`<tr data-seq=${e.seq ?? 0}>
          <th scope="row">${e.seq}</th><td>${time(e.time_ms)}</td><td>${e.action}</td>
          <td>${targetLink(e.target ?? "", e.target ?? "")}</td><td>${e.actor}</td>
          <td><span class="result ${badResult(e.result) ? "bad" : ""}">${e.result}</span></td><td>${e.message ?? ""}</td></tr>`)}</tbody>
      </table>
      ${shown.length === 0 ? html`<p class="muted">No events match.</p>` : nothing}
      ${pager(this.pager, "Event pages", `Page ${this.pager.page} · ${shown.length} of ${this.list.length} events`, (n) => this.turn(n))}`}`;
  }
}
customElements.define("strata-events", EventsPage);

// Search (/search?q=): VMs, hosts and images by name on the server (the lists' name filters:
// VMs first 25, images first 100), VMs by label on the server too (the VM list's label
// filter); hosts and images by label, and clusters (a handful, no filter), in their lists.
class SearchPage extends LivePage {
  static override properties = { ...LivePage.properties, q: { state: true }, vms: { state: true }, moreVms: { state: true },
    hosts: { state: true }, images: { state: true }, moreImages: { state: true }, clusters: { state: true } };
  q = new URLSearchParams(location.search).get("q") ?? "";
  vms: Vm[] = [];
  moreVms = false;
  hosts: Host[] = [];
  images: Array<{ name?: string; kind?: string; labels?: Record<string, string> }> = [];
  moreImages = false;
  clusters: string[] = [];

  protected override wants(e: StrataEvent | undefined): boolean {
    return /^(host|vm|image|cluster)\//.test(e?.target ?? "");
  }

  protected async load(): Promise<void> {
    const term = searchTerm(this.q);
    if (!term.name && !term.label) {
      this.vms = [];
      this.hosts = [];
      this.images = [];
      this.clusters = [];
      return;
    }
    const vmQuery: Record<string, string | number> = { limit: 25, sort: "name" };
    if (term.name) vmQuery.name = term.name;
    if (term.label) vmQuery.label = term.label.value === undefined ? term.label.key : `${term.label.key}=${term.label.value}`;
    const lists = searchListQueries(term);
    const [vms, hosts, images, clusters] = await Promise.all([
      // A label key alone is not a VM list filter: VMs are then matched by key=value only.
      term.label?.value === undefined && term.label ? null : api.GET("/api/v1/vms", { params: { query: vmQuery } }),
      api.GET("/api/v1/hosts", { params: { query: lists.hosts } }),
      api.GET("/api/v1/images", { params: { query: lists.images } }),
      api.GET("/api/v1/clusters"),
    ]);
    if (vms && !vms.data) throw new Error(errorText(vms.error, "cannot search VMs"));
    if (!hosts.data) throw new Error(errorText(hosts.error, "cannot search hosts"));
    if (!images.data) throw new Error(errorText(images.error, "cannot search images"));
    this.vms = vms?.data?.vms ?? [];
    this.moreVms = !!vms?.data?.next;
    this.hosts = (hosts.data?.hosts ?? []).filter((h) => searchMatches(h, term));
    const imageList = (images.data.images ?? []) as typeof this.images;
    this.moreImages = !!lists.images.name && imageList.length >= SEARCH_IMAGES;
    this.images = imageList.filter((i) => searchMatches(i, term));
    this.clusters = (clusters.data?.clusters ?? []).filter((c) => searchMatches(c, term)).map((c) => c.name);
  }

  override render() {
    const q = this.q;
    const none = this.loaded && !this.vms.length && !this.hosts.length && !this.images.length && !this.clusters.length;
    const vmLink = `/vms?${new URLSearchParams(searchTerm(q).label ? { label: q.trim() } : { name: q.trim() }).toString()}`;
    return html`<h1>Search: ${q}</h1>${this.renderError()}
      ${!this.loaded ? html`<p role="status">Loading…</p>` : nothing}
      ${none ? html`<p role="status">Nothing named or labelled ${q}.</p>` : nothing}
      ${this.vms.length ? html`<section aria-labelledby="s-vms-h"><h2 id="s-vms-h">VMs</h2>
        <ul class="plain" aria-label="VMs found">${this.vms.map((v) => html`<li data-found-vm=${v.name ?? ""}><a href="/vms/${v.name ?? ""}">${v.name}</a>
          ${stateBadge(vmState(v))} <span class="muted">${v.host ?? ""}</span></li>`)}</ul>
        ${this.moreVms ? html`<p><a href=${vmLink}>All matching VMs in the VM list…</a></p>` : nothing}</section>` : nothing}
      ${this.hosts.length ? html`<section aria-labelledby="s-hosts-h"><h2 id="s-hosts-h">Hosts</h2>
        <ul class="plain" aria-label="Hosts found">${this.hosts.map((h) => html`<li data-found-host=${h.name ?? ""}><a href="/hosts/${h.name ?? ""}">${h.name}</a> ${stateBadge(h.state)}</li>`)}</ul></section>` : nothing}
      ${this.clusters.length ? html`<section aria-labelledby="s-cl-h"><h2 id="s-cl-h">Clusters</h2>
        <ul class="plain" aria-label="Clusters found">${this.clusters.map((c) => html`<li><a href="/clusters/${c}">${c}</a></li>`)}</ul></section>` : nothing}
      ${this.images.length ? html`<section aria-labelledby="s-img-h"><h2 id="s-img-h">Images</h2>
        <ul class="plain" aria-label="Images found">${this.images.map((i) => html`<li data-found-image=${i.name ?? ""}><a href="/images">${i.name}</a> <span class="muted">${i.kind ?? ""}</span></li>`)}</ul>
        ${this.moreImages ? html`<p class="muted">The first ${SEARCH_IMAGES} matching images are shown; type more of the name to narrow.</p>` : nothing}</section>` : nothing}`;
  }
}
customElements.define("strata-search", SearchPage);
