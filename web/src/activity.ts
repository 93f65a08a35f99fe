// The tasks page (/tasks: every task, filtered by state on the server, paged) and the events
// page (/events: the event and audit log newest first, all of it or one target's, paged on
// the server; action, actor and result narrow the page shown). Both reload on the live
// events they show (page 1 only: later pages do not change): no polling.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, errorText, type StrataEvent, type Task } from "./api/client";
import { CursorPager, badResult, time } from "./format";
import { eventMatches, targetHref, type EventFilter } from "./inventory";
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
    const query: Record<string, string | number> = { limit: 50 };
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
      <table class="grid" aria-label="Tasks">
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
      <table class="grid" aria-label="Events">
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
