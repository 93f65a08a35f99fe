// The VM page (/vms/<name>) and the host page (/hosts/<name>). Both load once and again
// (debounced) when a live event names their target: no polling. The serial and graphical
// consoles are loaded on demand (console.ts pulls in xterm.js, vnc.ts noVNC, both kept out
// of the main bundle).
import { html, nothing, type PropertyValues } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, errorText, type Host, type HostUsage, type Schemas, type StrataEvent, type Task, type Vm } from "./api/client";
import { parsePairs } from "./wizard";

type HostDownPlan = Schemas["HostDownPlan"];
import {
  badResult,
  bytes,
  cloudInitLines,
  canOperate,
  cpuRanges,
  canMigrate,
  migrateBody,
  eventsFor,
  hostPageReload,
  mergeEvents,
  mib,
  time,
  vmActions,
  vmState,
  type VmAction,
} from "./format";
import { LivePage, capacity, datastoreBars, loadSummary, requestHost, stateBadge } from "./pages";
import { fetchOnce } from "./prefetch";
import "./charts";
import "./host-vms";
import "./backups";
import "./vm-devices";

type Json = Record<string, unknown>;
const obj = (v: unknown): Json => (v && typeof v === "object" && !Array.isArray(v) ? (v as Json) : {});
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const str = (v: unknown): string => (v === undefined || v === null || v === "" ? "-" : String(v));
const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined);

function labels(l: Record<string, string> | undefined) {
  const entries = Object.entries(l ?? {});
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return entries.map(([k, v]) => html`<span class="label">${k}=${v}</span>`);
}

// One target's events, newest first (GET /api/v1/events?target=), 50 at a time.
async function targetEvents(target: string, before?: number): Promise<{ events: StrataEvent[]; next: number | null }> {
  const query = before ? { target, limit: 50, before } : { target, limit: 50 };
  const { data, error } = await api.GET("/api/v1/events", { params: { query } });
  if (!data) throw new Error(errorText(error, `cannot read the events of ${target}`));
  return { events: data.events ?? [], next: data.next ?? null };
}

function eventList(events: StrataEvent[], what: string, older: (() => void) | null) {
  if (events.length === 0) return html`<p class="muted">No events for this ${what}.</p>`;
  return html`<ol class="events" tabindex="0" aria-live="polite" aria-label="Events of this ${what}">
    ${repeat(events, (e, i) => e.seq ?? `i${i}`, (e) => html`<li data-seq=${e.seq ?? 0}><time>${time(e.time_ms)}</time>
      <span class="action">${e.action}</span> <span>${e.actor}</span>
      <span class="result ${badResult(e.result) ? "bad" : ""}">${e.result}</span>
      ${e.message ? html`<span class="muted">${e.message}</span>` : nothing}</li>`)}
  </ol>
  ${older ? html`<button type="button" class="secondary" @click=${older}>Older events</button>` : nothing}`;
}

// What the guest's qemu-guest-agent last said (status.guest, refreshed by the manager; a
// change is a vm.guest event, which reloads this page), and the cloud-init the VM was given.
function guestSection(vm: Vm) {
  const g = vm.status?.guest;
  const ci = cloudInitLines(obj(vm.spec).cloud_init as Parameters<typeof cloudInitLines>[0]);
  return html`<section aria-labelledby="vm-guest-h" data-guest=${g ? "yes" : "no"}>
    <h2 id="vm-guest-h">Guest</h2>
    ${g
      ? html`<dl class="facts" aria-label="Guest facts">
          <dt>Host name</dt><dd data-fact="hostname">${str(g.hostname)}</dd>
          <dt>OS</dt><dd data-fact="os">${str(g.os_name)}${g.os_id ? html` <span class="muted">(${g.os_id} ${g.os_version ?? ""})</span>` : nothing}</dd>
          <dt>Kernel</dt><dd>${str(g.kernel_release)}</dd>
          <dt>Addresses</dt><dd data-fact="addresses">${(g.interfaces ?? []).length === 0
            ? "-"
            : html`<ul class="plain">${(g.interfaces ?? []).map((i) => html`<li><strong>${i.name}</strong>
                ${i.mac ? html`<code class="muted">${i.mac}</code>` : nothing} ${(i.addresses ?? []).join(", ") || "no address"}</li>`)}</ul>`}</dd>
          <dt>Last seen</dt><dd data-fact="seen">${g.updated_ms ? new Date(g.updated_ms).toLocaleString() : "-"}</dd>
        </dl>`
      : html`<p class="muted" role="status">No guest agent report: the VM is not running, or its guest has no qemu-guest-agent (yet).</p>`}
    ${ci.length
      ? html`<h3 id="vm-ci-h">cloud-init</h3><ul class="plain" aria-labelledby="vm-ci-h" data-cloud-init>${ci.map((l) => html`<li>${l}</li>`)}</ul>`
      : nothing}
  </section>`;
}

// "CD-ROM, then disk" from spec.boot ([]: the boot disk; a kernel boots directly).
function bootOrder(spec: Json): string {
  if (spec.kernel) return "kernel (direct boot)";
  const order = Array.isArray(spec.boot) ? (spec.boot as string[]) : [];
  if (order.length === 0) return "the boot disk";
  return order.map((d) => (d === "cdrom" ? "CD-ROM" : d === "disk" ? "disk" : d)).join(", then ");
}

// The CPU its QEMU runs with, and what it gets at its next start when that differs.
function cpuLine(vm: Vm) {
  const cpu = vm.cpu;
  const spec = obj(vm.spec);
  const model = cpu?.model ?? vm.status?.cpu_model ?? null;
  const chosen = typeof spec.cpu_model === "string" && spec.cpu_model ? `set on the VM: ${spec.cpu_model}` : `its cluster's baseline${cpu?.cluster ? ` (${cpu.cluster})` : ""}`;
  return html`${model ?? cpu?.next_start ?? "-"} <span class="muted">(${chosen})</span>
    ${cpu?.note ? html`<br /><span class="muted" data-cpu-note>${cpu.note}</span>` : nothing}`;
}

const ACTION_LABEL: Record<VmAction, string> = {
  start: "Start",
  shutdown: "Shut down",
  "force-off": "Force off",
  reboot: "Reboot",
  pause: "Pause",
  resume: "Resume",
  delete: "Delete",
};

class VmPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    name: { attribute: false },
    vm: { state: true },
    tasks: { state: true },
    history: { state: true },
    historyNext: { state: true },
    busy: { state: true },
    message: { state: true },
    gone: { state: true },
    consoleOpen: { state: true },
    displayOpen: { state: true },
    isos: { state: true },
    diskImages: { state: true },
    hostDatastores: { state: true },
    hostNames: { state: true },
    target: { state: true },
    medium: { state: true },
    cdromBusy: { state: true },
    cdromMessage: { state: true },
  };
  name = "";
  vm: Vm | null = null;
  hostNames: string[] = [];  // migration targets offered (operators)
  target = "";  // "" = the scheduler's choice
  isos: string[] = [];  // the catalog's iso images (operators: the CD-ROM's choices)
  diskImages: string[] = [];  // the catalog's disk images (operators: an attached disk's base)
  hostDatastores: string[] = [];  // the datastores the VM's host mounts
  medium = "";  // the iso chosen to insert
  cdromBusy = false;
  cdromMessage = "";
  cdromFailed = false;
  tasks: Task[] = [];
  history: StrataEvent[] = [];
  historyNext: number | null = null;
  busy = false;
  message = "";
  gone = false;
  consoleOpen = false;
  displayOpen = false;

  protected override wants(e: StrataEvent | undefined): boolean {
    return !!e && (e.target === `vm/${this.name}` || (e.target ?? "").startsWith("task/"));
  }

  protected async load(): Promise<void> {
    // The VM's own tasks, newest first (by its id: known after the first load).
    const tasksOf = (id: string) => api.GET("/api/v1/tasks", { params: { query: { target_id: id, order: "newest", limit: 10 } } });
    const known = this.vm?.id;
    const [vm, tasksNow, events, images, hosts] = await Promise.all([
      api.GET("/api/v1/vms/{name}", { params: { path: { name: this.name } } }),
      known ? tasksOf(known) : null,
      targetEvents(`vm/${this.name}`),
      canOperate(this.role) ? api.GET("/api/v1/images", { params: { query: { limit: 1000 } } }) : null,
      canOperate(this.role) ? api.GET("/api/v1/hosts") : null,
    ]);
    if (hosts?.data) this.hostNames = (hosts.data.hosts ?? []).map((h) => h.name ?? "").filter(Boolean);
    const named = (kind: string) => (images?.data?.images ?? []).filter((i) => i.kind === kind).map((i) => i.name ?? "").filter(Boolean);
    if (images?.data) {
      this.isos = named("iso");
      this.diskImages = named("disk");
    }
    if (vm.response.status === 404) {
      this.vm = null;
      this.gone = true;
      return;
    }
    if (!vm.data) throw new Error(errorText(vm.error, `cannot read VM ${this.name}`));
    // An attached disk may go on a datastore its VM's host mounts (its inventory says which).
    if (canOperate(this.role) && vm.data.host) {
      const host = await requestHost(vm.data.host);
      const inventory = host.data?.inventory as { datastores?: Array<{ name?: unknown }> } | undefined;
      this.hostDatastores = (inventory?.datastores ?? [])
        .map((d) => (typeof d.name === "string" ? d.name : ""))
        .filter(Boolean)
        .sort();
    } else {
      this.hostDatastores = [];
    }
    this.vm = vm.data;
    const id = vm.data.id ?? "";
    const tasks = tasksNow && known === id ? tasksNow : id ? await tasksOf(id) : null;
    this.tasks = tasks?.data?.tasks ?? [];
    // The newest page again; older pages already read stay (they do not change).
    this.history = mergeEvents(events.events, this.history);
    if (this.historyNext === null || this.history.length <= events.events.length) this.historyNext = events.next;
  }

  private async act(action: VmAction): Promise<void> {
    const name = this.name;
    const params = { params: { path: { name } } };
    this.busy = true;
    let r: { error?: unknown; data?: { task?: Task } };
    switch (action) {
      case "start": r = await api.POST("/api/v1/vms/{name}/start", params); break;
      case "shutdown": r = await api.POST("/api/v1/vms/{name}/stop", { ...params, body: { force: false } }); break;
      case "force-off": r = await api.POST("/api/v1/vms/{name}/stop", { ...params, body: { force: true } }); break;
      case "reboot": r = await api.POST("/api/v1/vms/{name}/reboot", params); break;
      case "pause": r = await api.POST("/api/v1/vms/{name}/pause", params); break;
      case "resume": r = await api.POST("/api/v1/vms/{name}/resume", params); break;
      case "delete": r = await api.DELETE("/api/v1/vms/{name}", params); break;
    }
    this.busy = false;
    const label = ACTION_LABEL[action].toLowerCase();
    this.message = r.error ? `${label} ${name}: ${errorText(r.error)}` : `${label} ${name}: accepted`;
    void this.refresh();
  }

  // Live migration to the host chosen or the scheduler's choice: a vm.migrate task, whose
  // progress shows under Recent tasks (task events reload the page).
  private async migrate(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    this.busy = true;
    const r = await api.POST("/api/v1/vms/{name}/migrate", { params: { path: { name: this.name } }, body: migrateBody(this.target) });
    this.busy = false;
    const where = this.target ? ` to ${this.target}` : "";
    this.message = r.error ? `migrate ${this.name}${where}: ${errorText(r.error)}` : `migrate ${this.name}${where}: accepted`;
    void this.refresh();
  }

  private renderMigrate(vm: Vm) {
    const others = this.hostNames.filter((h) => h !== vm.host);
    const m = vm.status?.migration;
    if (m) return html`<p class="notice" role="status" data-migrating>Migrating (${m.phase ?? "pending"}): see its task below.</p>`;
    if (!canMigrate(vm)) return nothing;
    return html`<form class="toolbar" aria-label="Live migration" @submit=${(e: SubmitEvent) => this.migrate(e)}>
      <label for="vm-migrate-host">Migrate to</label>
      <select id="vm-migrate-host" @change=${(e: Event) => { this.target = (e.target as HTMLSelectElement).value; }}>
        <option value="" ?selected=${this.target === ""}>the scheduler's choice</option>
        ${others.map((h) => html`<option value=${h} ?selected=${this.target === h}>${h}</option>`)}
      </select>
      <button type="submit" class="secondary" ?disabled=${this.busy}>Migrate</button>
    </form>`;
  }

  // Insert (or change) the CD-ROM's medium, or eject it (image null): a vm.cdrom task; the
  // page reloads on the VM's events and shows the medium once the host has it.
  private async cdrom(image: string | null): Promise<void> {
    if (image === "") {
      this.cdromFailed = true;
      this.cdromMessage = "choose an ISO image first";
      return;
    }
    this.cdromBusy = true;
    const { error } = await api.POST("/api/v1/vms/{name}/cdrom", { params: { path: { name: this.name } }, body: { image } });
    this.cdromBusy = false;
    this.cdromFailed = !!error;
    const what = image === null ? "eject" : `insert ${image}`;
    this.cdromMessage = error ? `${what}: ${errorText(error)}` : `${what}: accepted`;
    void this.refresh();
  }

  private renderCdrom(vm: Vm, spec: Json, operate: boolean) {
    const medium = typeof spec.cdrom === "string" && spec.cdrom ? spec.cdrom : "";
    const choice = this.medium || this.isos.find((i) => i !== medium) || "";
    return html`<section aria-labelledby="vm-cdrom-h" data-cdrom=${medium}>
      <h2 id="vm-cdrom-h">CD-ROM</h2>
      <p>Medium: <strong data-medium>${medium || "empty"}</strong></p>
      ${operate
        ? html`<form class="toolbar" aria-label="CD-ROM medium" @submit=${(e: SubmitEvent) => { e.preventDefault(); void this.cdrom(choice); }}>
            <label for="vm-cdrom-image">ISO image</label>
            <select id="vm-cdrom-image" @change=${(e: Event) => { this.medium = (e.target as HTMLSelectElement).value; }}>
              ${this.isos.length === 0 ? html`<option value="">no iso image in the catalog</option>` : nothing}
              ${this.isos.map((i) => html`<option value=${i} ?selected=${i === choice}>${i}</option>`)}
            </select>
            <button type="submit" ?disabled=${this.cdromBusy || !choice}>${medium ? "Change medium" : "Insert"}</button>
            <button type="button" class="secondary" ?disabled=${this.cdromBusy || !medium} @click=${() => this.cdrom(null)}>Eject</button>
            ${vm.status?.state === "running" ? html`<span class="muted">The guest sees the change at once (no restart).</span>` : nothing}
          </form>
          ${this.cdromMessage ? html`<p class=${this.cdromFailed ? "error" : "notice"} role=${this.cdromFailed ? "alert" : "status"}>${this.cdromMessage}</p>` : nothing}`
        : nothing}
    </section>`;
  }

  private async older(): Promise<void> {
    if (!this.historyNext) return;
    const page = await targetEvents(`vm/${this.name}`, this.historyNext);
    this.history = mergeEvents(this.history, page.events);
    this.historyNext = page.next;
  }

  private confirmDelete(): void {
    this.querySelector<HTMLDialogElement>("#delete-dialog")?.showModal();
  }

  private async closeDelete(yes: boolean): Promise<void> {
    this.querySelector<HTMLDialogElement>("#delete-dialog")?.close();
    if (yes) await this.act("delete");
  }

  private async openConsole(): Promise<void> {
    await import("./console");
    this.consoleOpen = true;
  }

  private async openDisplay(): Promise<void> {
    await import("./vnc");
    this.displayOpen = true;
  }

  override render() {
    if (this.gone)
      return html`<h1>VM ${this.name}</h1>
        <p role="status">There is no VM named ${this.name} (deleted?). <a href="/vms">All VMs</a></p>
        ${this.message ? html`<p class="notice" role="status">${this.message}</p>` : nothing}`;
    if (!this.vm) return html`<h1>VM ${this.name}</h1>${this.renderError()}<p role="status">Loading…</p>`;
    const vm = this.vm;
    const spec = obj(vm.spec);
    const operate = canOperate(this.role);
    const actions = operate ? vmActions(vm) : [];
    const events = mergeEvents(eventsFor(this.events, "vm", this.name), this.history);
    return html`
      <h1>VM ${vm.name} ${stateBadge(vmState(vm))}</h1>
      ${this.renderError()}
      ${this.message ? html`<p class="notice" role="status">${this.message}</p>` : nothing}
      ${actions.length
        ? html`<div class="toolbar" role="toolbar" aria-label="VM actions">
            ${actions.map((a) => a === "delete"
              ? html`<button type="button" class="danger" ?disabled=${this.busy} @click=${() => this.confirmDelete()}>Delete…</button>`
              : html`<button type="button" class=${a === "start" || a === "resume" ? "" : "secondary"}
                  ?disabled=${this.busy} @click=${() => this.act(a)}>${ACTION_LABEL[a]}</button>`)}
          </div>
          ${this.renderMigrate(vm)}
          <dialog id="delete-dialog" aria-labelledby="delete-title">
            <h2 id="delete-title">Delete VM ${vm.name}?</h2>
            <p>The VM is stopped and its disks are removed from ${vm.host || "its host"}. This cannot be undone.</p>
            <div class="toolbar">
              <button type="button" class="danger" @click=${() => this.closeDelete(true)}>Delete ${vm.name}</button>
              <button type="button" class="secondary" @click=${() => this.closeDelete(false)}>Cancel</button>
            </div>
          </dialog>`
        : nothing}
      <div class="cols">
        <section aria-labelledby="vm-state-h">
          <h2 id="vm-state-h">State</h2>
          <dl class="facts">
            <dt>Observed</dt><dd>${stateBadge(vmState(vm))}${vm.status?.agent_state ? html` <span class="muted">(agent: ${vm.status.agent_state})</span>` : nothing}</dd>
            <dt>Desired</dt><dd>${vm.desired_state}${vm.deletion_requested ? " (deleting)" : ""}</dd>
            <dt>Host</dt><dd>${vm.host ? html`<a href="/hosts/${vm.host}">${vm.host}</a>` : "not placed"}</dd>
            ${vm.status?.last_error ? html`<dt>Last error</dt><dd class="error-text">${vm.status.last_error}</dd>` : nothing}
            <dt>Observed at</dt><dd>${time(vm.status?.observed_ms)}</dd>
            <dt>Labels</dt><dd class="labels">${labels(vm.labels)}</dd>
          </dl>
        </section>
        <section aria-labelledby="vm-spec-h">
          <h2 id="vm-spec-h">Spec</h2>
          <dl class="facts">
            <dt>vCPUs</dt><dd>${str(spec.vcpus)}</dd>
            <dt>Memory</dt><dd>${mib(num(spec.memory_mib))}</dd>
            <dt>Machine</dt><dd>${str(spec.machine)}</dd>
            ${spec.kernel ? html`<dt>Kernel</dt><dd>${str(spec.kernel)} ${spec.initrd ? html`+ ${str(spec.initrd)}` : nothing}</dd>` : nothing}
            ${spec.cmdline ? html`<dt>Command line</dt><dd><code>${str(spec.cmdline)}</code></dd>` : nothing}
            <dt>Firmware</dt><dd data-spec="firmware">${spec.firmware === "uefi" ? "UEFI (OVMF)" : "BIOS (SeaBIOS)"}</dd>
            <dt>Boot order</dt><dd data-spec="boot">${bootOrder(spec)}</dd>
            <dt>Watchdog</dt><dd data-spec="watchdog">${vm.spec?.watchdog ? html`i6300esb, ${str(vm.spec.watchdog.action)} when it expires` : "none"}</dd>
            <dt>CPU model</dt><dd data-spec="cpu">${cpuLine(vm)}</dd>
            <dt>UUID</dt><dd>${str(spec.uuid)}</dd>
            <dt>Created</dt><dd>${vm.created_ms ? new Date(vm.created_ms).toLocaleString() : "-"}</dd>
          </dl>
        </section>
      </div>
      ${guestSection(vm)}
      ${spec.machine === undefined || spec.machine === "q35" ? this.renderCdrom(vm, spec, operate) : nothing}
      <strata-vm-devices .vm=${vm} .role=${this.role} .images=${this.diskImages} .datastores=${this.hostDatastores} .reload=${() => void this.refresh()}></strata-vm-devices>
      ${vm.host
        ? html`<section aria-labelledby="vm-charts-h">
            <h2 id="vm-charts-h">Metrics</h2>
            <strata-metrics-charts .host=${vm.host} .vm=${vm.name ?? ""} .vcpus=${num(spec.vcpus) ?? 0}
              .memTotal=${(num(spec.memory_mib) ?? 0) * 1048576}></strata-metrics-charts>
          </section>`
        : nothing}
      <strata-vm-backups .name=${vm.name ?? ""} .role=${this.role} .events=${this.events}></strata-vm-backups>
      ${operate
        ? html`<section aria-labelledby="vm-console-h">
            <h2 id="vm-console-h">Serial console</h2>
            ${this.consoleOpen
              ? html`<strata-serial-console .name=${vm.name ?? ""}></strata-serial-console>`
              : html`<button type="button" @click=${() => this.openConsole()}>Open serial console</button>`}
          </section>`
        : nothing}
      ${operate && spec.vnc !== false
        ? html`<section aria-labelledby="vm-display-h">
            <h2 id="vm-display-h">Graphical console</h2>
            ${this.displayOpen
              ? html`<strata-graphical-console .name=${vm.name ?? ""}></strata-graphical-console>`
              : html`<button type="button" @click=${() => this.openDisplay()}>Open graphical console</button>`}
          </section>`
        : nothing}
      <div class="cols">
        <section aria-labelledby="vm-tasks-h">
          <h2 id="vm-tasks-h">Recent tasks</h2>
          ${this.tasks.length === 0 ? html`<p class="muted">No tasks.</p>` : html`
          <table class="grid" aria-label="Tasks of this VM" tabindex="0">
            <thead><tr><th scope="col">Task</th><th scope="col">State</th><th scope="col">Message</th><th scope="col">Updated</th></tr></thead>
            <tbody>${repeat(this.tasks, (t) => t.id ?? "", (t) => html`<tr><td>${t.kind}</td>
              <td>${stateBadge(t.state)}${t.state === "running" ? html` <progress max="100" .value=${t.progress ?? 0} aria-label="progress"></progress>` : nothing}</td>
              <td>${t.message ?? ""}</td><td>${time(t.updated_ms)}</td></tr>`)}</tbody>
          </table>`}
        </section>
        <section aria-labelledby="vm-events-h">
          <h2 id="vm-events-h">Events</h2>
          ${eventList(events, "VM", this.historyNext ? () => void this.older() : null)}
        </section>
      </div>
    `;
  }
}
customElements.define("strata-vm", VmPage);

class HostPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    name: { attribute: false },
    host: { state: true },
    usage: { state: true },
    gone: { state: true },
    history: { state: true },
    historyNext: { state: true },
    plan: { state: true },
    evacuation: { state: true },
    partial: { state: true },
    hostBusy: { state: true },
    hostMessage: { state: true },
    newLabel: { state: true },
  };
  name = "";
  host: Host | null = null;
  plan: HostDownPlan | null = null;  // the evacuation plan, when asked for
  evacuation: Task | null = null;  // the host's latest host.evacuate task
  partial = false;
  hostBusy = false;
  hostMessage = "";
  hostFailed = false;
  newLabel = "";
  // The host as the summary has it: what its VMs hold (the scheduler's allocation cache),
  // how many there are, and its datastores' use. Its VMs are paged by <strata-host-vms>.
  usage: HostUsage | null = null;
  gone = false;
  history: StrataEvent[] = [];
  historyNext: number | null = null;

  private summaryTimer: number | undefined;
  private taskTimer: number | undefined;

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.clearTimeout(this.summaryTimer);
    window.clearTimeout(this.taskTimer);
  }

  // The host's own events reload the page; its VMs' events only the summary (below).
  protected override wants(e: StrataEvent | undefined): boolean {
    return hostPageReload(e, { name: this.name, id: this.host?.id }) === "page";
  }

  // A VM of this host created, started, stopped, moved or deleted changes what its VMs
  // hold: the capacity and datastore bars are read again (debounced like a reload: a burst
  // of events is one request), the host and its events are not.
  protected override updated(changed: PropertyValues): void {
    super.updated(changed);
    const before = changed.get("events") as StrataEvent[] | undefined;
    if (before === undefined || this.events[0] === before[0]) return;
    // Every event that came since (several can arrive in one update).
    const seen = before[0] === undefined ? -1 : this.events.indexOf(before[0]);
    const fresh = this.events.slice(0, seen < 0 ? this.events.length : seen);
    const host = { name: this.name, id: this.host?.id };
    // An evacuation's task moves on (no polling: its task events).
    if (fresh.some((e) => (e.target ?? "").startsWith("task/"))) {
      window.clearTimeout(this.taskTimer);
      this.taskTimer = window.setTimeout(() => this.readEvacuation(), 300);
    }
    if (!fresh.some((e) => hostPageReload(e, host) === "summary")) return;
    window.clearTimeout(this.summaryTimer);
    this.summaryTimer = window.setTimeout(() => this.readSummary(), 300);
  }

  // The summary (what the host's VMs hold, its datastores) is counted over every VM: it
  // fills the capacity bars when it comes, the rest of the page does not wait for it.
  private readSummary(): void {
    loadSummary().then(
      (s) => { this.usage = s.hosts.items.find((u) => u.name === this.name) ?? null; },
      (e: unknown) => { this.error = e instanceof Error ? e.message : String(e); },
    );
  }

  // The host's latest evacuation (its task: progress, then what moved and what stayed).
  private readEvacuation(): void {
    const id = this.host?.id;
    if (!id) return;
    api.GET("/api/v1/tasks", { params: { query: { target_id: id, order: "newest", limit: 50 } } }).then(({ data }) => {
      this.evacuation = (data?.tasks ?? []).find((t) => t.kind === "host.evacuate") ?? null;
    }, () => {});
  }

  private hostSaid(error: unknown, ok: string): void {
    this.hostFailed = !!error;
    this.hostMessage = error ? errorText(error) : ok;
  }

  // What an evacuation would do now: the scheduler's dry run with this host taken away.
  private async showPlan(): Promise<void> {
    const r = await api.POST("/api/v1/plan/host-down", { body: { hosts: [this.name] } });
    this.plan = r.data ?? null;
    if (!r.data) this.hostSaid(r.error, "");
  }

  private async evacuate(): Promise<void> {
    this.hostBusy = true;
    const r = await api.POST("/api/v1/hosts/{name}/evacuate", { params: { path: { name: this.name } }, body: { partial: this.partial } });
    this.hostBusy = false;
    this.hostSaid(r.error, `evacuation of ${this.name} started: the host is in maintenance`);
    if (r.data?.task) this.evacuation = r.data.task;
    void this.refresh();
  }

  private async patchHost(body: { maintenance?: boolean; labels?: Record<string, string | null> }, ok: string): Promise<void> {
    this.hostBusy = true;
    const r = await api.PATCH("/api/v1/hosts/{name}", { params: { path: { name: this.name } }, body });
    this.hostBusy = false;
    this.hostSaid(r.error, ok);
    if (r.data) this.host = { ...r.data, inventory: this.host?.inventory ?? r.data.inventory, metrics: this.host?.metrics ?? r.data.metrics };
    void this.refresh();
  }

  private addLabel(ev: SubmitEvent): void {
    ev.preventDefault();
    const parsed = parsePairs(this.newLabel, "labels");
    const pairs = Object.entries(parsed.pairs);
    if (parsed.error || pairs.length === 0) {
      this.hostSaid({ error: { message: parsed.error?.message ?? "enter key=value", field: "labels" } }, "");
      return;
    }
    this.newLabel = "";
    void this.patchHost({ labels: Object.fromEntries(pairs) }, `labels set: ${pairs.map(([k, v]) => `${k}=${v}`).join(", ")}`);
  }

  private renderMaintenance(h: Host) {
    const operate = canOperate(this.role);
    const t = this.evacuation;
    const result = (t?.result ?? {}) as { moved?: unknown[]; stays?: Array<{ vm?: string; reason?: string }>; total?: number };
    return html`<section aria-labelledby="host-maint-h" data-maintenance=${h.maintenance ? "on" : "off"}>
      <h2 id="host-maint-h">Maintenance</h2>
      <p>${h.maintenance ? html`<strong>In maintenance</strong>: no VM is placed here.` : "Not in maintenance."}</p>
      ${this.hostMessage ? html`<p class=${this.hostFailed ? "error" : "notice"} role=${this.hostFailed ? "alert" : "status"}>${this.hostMessage}</p>` : nothing}
      ${t
        ? html`<p data-evacuation=${t.state ?? ""}>Evacuation ${stateBadge(t.state)}
            ${t.state === "running" || t.state === "pending" ? html`<progress max="100" .value=${t.progress ?? 0} aria-label="evacuation progress"></progress>` : nothing}
            <span class="muted">${t.message ?? ""}</span>
            ${Array.isArray(result.moved) ? html` · ${result.moved.length} moved` : nothing}
            ${Array.isArray(result.stays) && result.stays.length ? html` · stayed: ${result.stays.map((s) => `${s.vm} (${s.reason})`).join("; ")}` : nothing}</p>`
        : nothing}
      <div class="toolbar">
        <button type="button" class="secondary" @click=${() => this.showPlan()}>Show the evacuation plan</button>
        ${operate && !h.maintenance
          ? html`<button type="button" ?disabled=${this.hostBusy} @click=${() => this.evacuate()}>Evacuate and enter maintenance</button>
              <label><input type="checkbox" .checked=${this.partial} @change=${(e: Event) => { this.partial = (e.target as HTMLInputElement).checked; }} />
                move what fits even if some running VM cannot</label>
              <button type="button" class="secondary" ?disabled=${this.hostBusy} @click=${() => this.patchHost({ maintenance: true }, "in maintenance (its VMs stay)")}>Enter maintenance without moving VMs</button>`
          : nothing}
        ${operate && h.maintenance
          ? html`<button type="button" ?disabled=${this.hostBusy} @click=${() => this.patchHost({ maintenance: false }, "maintenance ended")}>Leave maintenance</button>`
          : nothing}
      </div>
      ${this.plan
        ? html`<p role="status" class=${this.plan.fits ? "notice" : "error-text"}>${this.plan.summary}</p>
          <table class="grid" aria-label="Evacuation plan">
            <thead><tr><th scope="col">VM</th><th scope="col">Goes to</th><th scope="col">Why</th></tr></thead>
            <tbody>
              ${this.plan.moves.map((m) => html`<tr data-plan-vm=${m.vm}><th scope="row">${m.vm}</th><td>${m.to}</td><td>score ${m.score.toFixed(1)}${m.ha ? " (HA)" : ""}</td></tr>`)}
              ${this.plan.stays.map((m) => html`<tr data-plan-vm=${m.vm}><th scope="row">${m.vm}</th><td><span class="error-text">stays</span></td><td>${m.reason}</td></tr>`)}
            </tbody>
          </table>`
        : nothing}
    </section>`;
  }

  private renderLabels(h: Host) {
    const entries = Object.entries(h.labels ?? {});
    const operate = canOperate(this.role);
    return html`<span class="labels">${entries.length === 0 ? html`<span class="muted">none</span>` : entries.map(([k, v]) => html`<span class="label">${k}=${v}${operate
        ? html` <button type="button" class="twisty" aria-label="Remove label ${k}" ?disabled=${this.hostBusy}
            @click=${() => this.patchHost({ labels: { [k]: null } }, `label ${k} removed`)}>×</button>`
        : nothing}</span>`)}</span>
      ${operate
        ? html`<form class="toolbar" aria-label="Host labels" @submit=${(e: SubmitEvent) => this.addLabel(e)}>
            <label for="host-label">New label</label>
            <input id="host-label" placeholder="key=value" spellcheck="false" .value=${this.newLabel}
              @input=${(e: InputEvent) => { this.newLabel = (e.target as HTMLInputElement).value; }} />
            <button type="submit" class="secondary" ?disabled=${this.hostBusy}>Add label</button>
          </form>`
        : nothing}`;
  }

  protected async load(): Promise<void> {
    this.readSummary();
    const [host, events] = await Promise.all([
      fetchOnce(`host:${this.name}`, () => requestHost(this.name)),
      targetEvents(`host/${this.name}`),
    ]);
    this.history = mergeEvents(events.events, this.history);
    if (this.historyNext === null || this.history.length <= events.events.length) this.historyNext = events.next;
    if (host.response.status === 404) {
      this.gone = true;
      return;
    }
    if (!host.data) throw new Error(errorText(host.error, `cannot read host ${this.name}`));
    this.host = host.data;
    this.readEvacuation();
  }

  private async older(): Promise<void> {
    if (!this.historyNext) return;
    const page = await targetEvents(`host/${this.name}`, this.historyNext);
    this.history = mergeEvents(this.history, page.events);
    this.historyNext = page.next;
  }

  // The VM list does not wait for the host's own data (one template around both, so the
  // list element stays when the host arrives).
  override render() {
    if (this.gone) return html`<h1>Host ${this.name}</h1><p role="status">There is no host named ${this.name}. <a href="/hosts">All hosts</a></p>`;
    const u = this.usage;
    return html`
      ${this.host ? this.renderHost(this.host) : html`<h1>Host ${this.name}</h1>${this.renderError()}<p role="status">Loading…</p>`}
      <section aria-labelledby="host-vms-h">
        <h2 id="host-vms-h">VMs on ${this.name}${u ? ` (${u.vms})` : ""}</h2>
        <strata-host-vms .host=${this.name} .events=${this.events} .role=${this.role}></strata-host-vms>
      </section>
      ${this.host
        ? html`<section aria-labelledby="host-events-h">
            <h2 id="host-events-h">Events</h2>
            ${eventList(mergeEvents(eventsFor(this.events, "host", this.name), this.history), "host",
              this.historyNext ? () => void this.older() : null)}
          </section>`
        : nothing}
    `;
  }

  private renderHost(h: Host) {
    const inv = obj(h.inventory);
    const cpu = obj(inv.cpu);
    const mem = obj(inv.memory);
    const os = obj(inv.os);
    const qemu = obj(inv.qemu);
    const accel = obj(inv.accelerator);
    const u = this.usage;
    // The sample is the agent's metrics answer: the host's own figures are under "host".
    const sample = obj(h.metrics);
    const metrics = Object.entries(sample.host ? obj(sample.host) : sample).filter(([k, v]) => (typeof v === "number" || typeof v === "string") && k !== "metrics_json");
    return html`
      <h1>Host ${h.name} ${stateBadge(h.state)}</h1>
      ${this.renderError()}
      <div class="cols">
        <section aria-labelledby="host-cap-h">
          <h2 id="host-cap-h">Capacity</h2>
          ${u
            ? html`${capacity("CPU", u.allocated_vcpus, h.cpu_threads ?? 0, `${u.allocated_vcpus} / ${h.cpu_threads ?? 0} vCPU allocated`)}
              ${capacity("Memory", u.allocated_memory_mib, h.memory_mib ?? 0, `${mib(u.allocated_memory_mib)} / ${mib(h.memory_mib)} allocated`)}
              ${u.datastores.length ? html`<h3 id="host-ds-h">Datastores</h3>${datastoreBars(u.datastores)}` : nothing}`
            : html`<p class="muted" role="status">Counting what its VMs hold…</p>`}
          <dl class="facts">
            <dt>Cluster</dt><dd data-host-cluster><a href="/clusters/${h.cluster || "default"}">${h.cluster || "default"}</a></dd>
            <dt>Address</dt><dd><code>${str(h.address)}</code></dd>
            <dt>Reachability</dt><dd>${str(h.reachability)}${h.maintenance ? " (maintenance)" : ""}</dd>
            <dt>Last heartbeat</dt><dd>${time(h.last_heartbeat_ms)}</dd>
            <dt>Labels</dt><dd data-host-labels>${this.renderLabels(h)}</dd>
          </dl>
        </section>
        <section aria-labelledby="host-sys-h">
          <h2 id="host-sys-h">System</h2>
          <dl class="facts">
            <dt>CPU</dt><dd>${str(cpu.model_name)} <span class="muted">(${str(cpu.vendor)})</span></dd>
            <dt>Topology</dt><dd>${str(cpu.sockets)} sockets × ${str(cpu.cores)} cores, ${str(cpu.threads)} threads</dd>
            <dt>Memory</dt><dd>${bytes(num(mem.total_bytes))} total, ${bytes(num(mem.available_bytes))} available</dd>
            <dt>Huge pages</dt><dd>${str(mem.hugepages_free)} free of ${str(mem.hugepages_total)} × ${bytes(num(mem.hugepage_size_bytes))}</dd>
            <dt>Accelerator</dt><dd>${str(h.accelerator)}${accel.reason ? html` <span class="muted">(${str(accel.reason)})</span>` : nothing}</dd>
            <dt>QEMU</dt><dd>${str(qemu.version)} <span class="muted">${qemu.binary ? str(qemu.binary) : ""}</span></dd>
            <dt>Agent</dt><dd data-agent-level=${h.agent_api_level ?? ""}>${str(h.agent_version)} <span class="muted">API level ${str(h.agent_api_level)}</span></dd>
            <dt>OS</dt><dd>${str(os.pretty_name)}, kernel ${str(os.kernel_release)}</dd>
          </dl>
        </section>
      </div>
      ${this.renderMaintenance(h)}
      <div class="cols">
        <section aria-labelledby="host-numa-h">
          <h2 id="host-numa-h">NUMA nodes</h2>
          <table class="grid" aria-label="NUMA nodes">
            <thead><tr><th scope="col">Node</th><th scope="col">CPUs</th><th scope="col">Memory</th><th scope="col">Free</th></tr></thead>
            <tbody>${arr(inv.numa_nodes).map((n) => html`<tr><th scope="row">${str(n.id)}</th>
              <td>${cpuRanges(Array.isArray(n.cpus) ? (n.cpus as number[]) : undefined)}</td>
              <td>${bytes(num(n.memory_total_bytes))}</td><td>${bytes(num(n.memory_free_bytes))}</td></tr>`)}</tbody>
          </table>
        </section>
        <section aria-labelledby="host-charts-h">
          <h2 id="host-charts-h">Metrics</h2>
          <strata-metrics-charts .host=${h.name ?? ""} .memTotal=${num(mem.total_bytes) ?? (h.memory_mib ?? 0) * 1048576}></strata-metrics-charts>
        </section>
        <section aria-labelledby="host-metrics-h">
          <h2 id="host-metrics-h">Latest metrics</h2>
          ${metrics.length === 0 ? html`<p class="muted">No sample yet.</p>` : html`<dl class="facts">
            ${metrics.map(([k, v]) => html`<dt>${k}</dt><dd>${String(v)}</dd>`)}</dl>`}
        </section>
      </div>
      <div class="cols">
        <section aria-labelledby="host-disks-h">
          <h2 id="host-disks-h">Disks</h2>
          <table class="grid" aria-label="Host disks">
            <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">Model</th><th scope="col">Kind</th></tr></thead>
            <tbody>${arr(inv.block_devices).map((d) => html`<tr><th scope="row">${str(d.name)}</th><td>${bytes(num(d.size_bytes))}</td>
              <td>${str(d.model)}</td><td>${[d.virtual ? "virtual" : "", d.rotational ? "rotational" : "", d.removable ? "removable" : ""].filter(Boolean).join(", ") || "-"}</td></tr>`)}</tbody>
          </table>
        </section>
        <section aria-labelledby="host-nics-h">
          <h2 id="host-nics-h">Network interfaces</h2>
          <table class="grid" aria-label="Host network interfaces" tabindex="0">
            <thead><tr><th scope="col">Name</th><th scope="col">State</th><th scope="col">MAC</th><th scope="col">Speed</th><th scope="col">MTU</th></tr></thead>
            <tbody>${arr(inv.interfaces).map((n) => html`<tr><th scope="row">${str(n.name)}${n.bridge ? html` <span class="badge">bridge</span>` : nothing}</th>
              <td>${str(n.operstate)}</td><td><code>${str(n.mac)}</code></td>
              <td>${n.speed_mbps ? `${str(n.speed_mbps)} Mb/s` : "-"}</td><td>${str(n.mtu)}</td></tr>`)}</tbody>
          </table>
        </section>
      </div>
    `;
  }
}
customElements.define("strata-host", HostPage);
