// The inventory (/inventory: the tree cluster -> hosts -> VMs and the clusters table) and the
// cluster page (/clusters/<name>: its hosts, its CPU baseline and why it is not higher).
// Admins create clusters and set a baseline, operators and admins move hosts; a viewer sees
// no control. Pages reload on the live events of clusters, hosts and VMs: no polling.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, errorText, type HostUsage, type Schemas, type StrataEvent, type Vm } from "./api/client";
import { canOperate, vmState } from "./format";
import { baselineLine, baselineValue, clusterCreateBody, clusterTree, hostsOutside, type Invalid } from "./inventory";
import { LivePage } from "./live-page";
import { loadSummary, stateBadge } from "./pages";

type Cluster = Schemas["Cluster"];
type ClusterHost = Schemas["ClusterHost"];

const TREE_VMS = 50;  // VMs shown under an opened host (the host page pages through all)

async function listClusters(): Promise<Cluster[]> {
  const { data, error } = await api.GET("/api/v1/clusters");
  if (!data) throw new Error(errorText(error, "cannot list clusters"));
  return data.clusters ?? [];
}

// The error envelope's field and message (the API's 400/409), for the form's own line.
function invalidOf(error: unknown): Invalid {
  const e = (error as { error?: { field?: string; message?: string } } | undefined)?.error;
  return { field: e?.field ?? "", message: errorText(error) };
}

function modelList(id: string, models: string[]) {
  return html`<datalist id=${id}>${["auto", ...new Set(models.filter(Boolean))].map((m) => html`<option value=${m}></option>`)}</datalist>`;
}

class InventoryPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    clusters: { state: true },
    hosts: { state: true },
    open: { state: true },
    vmsOf: { state: true },
    closed: { state: true },
    newName: { state: true },
    newBaseline: { state: true },
    formError: { state: true },
    formMessage: { state: true },
  };
  clusters: Cluster[] = [];
  hosts: HostUsage[] = [];
  open = new Set<string>();  // hosts whose VMs are shown
  closed = new Set<string>();  // clusters folded by the user (clusters are open by default)
  vmsOf = new Map<string, { vms: Vm[]; more: boolean; error?: string }>();
  newName = "";
  newBaseline = "";
  formError: Invalid | null = null;
  formMessage = "";

  protected override wants(e: StrataEvent | undefined): boolean {
    return /^(host|vm|cluster)\//.test(e?.target ?? "");
  }

  protected async load(): Promise<void> {
    const [clusters, summary] = await Promise.all([listClusters(), loadSummary()]);
    this.clusters = clusters;
    this.hosts = summary.hosts.items;
    await Promise.all([...this.open].map((h) => this.readVms(h)));
  }

  private async readVms(host: string): Promise<void> {
    const { data, error } = await api.GET("/api/v1/vms", { params: { query: { host, limit: TREE_VMS, sort: "name" } } });
    const next = new Map(this.vmsOf);
    next.set(host, data ? { vms: data.vms ?? [], more: !!data.next } : { vms: [], more: false, error: errorText(error, "cannot list its VMs") });
    this.vmsOf = next;
  }

  private toggleHost(host: string): void {
    const next = new Set(this.open);
    if (next.has(host)) next.delete(host);
    else {
      next.add(host);
      void this.readVms(host);
    }
    this.open = next;
  }

  private toggleCluster(name: string): void {
    const next = new Set(this.closed);
    if (next.has(name)) next.delete(name);
    else next.add(name);
    this.closed = next;
  }

  private async create(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const { body, error } = clusterCreateBody(this.newName, this.newBaseline);
    if (!body) {
      this.formError = error ?? null;
      this.formMessage = "";
      return;
    }
    const r = await api.POST("/api/v1/clusters", { body });
    if (!r.data) {
      this.formError = invalidOf(r.error);
      this.formMessage = "";
      return;
    }
    this.formError = null;
    this.formMessage = `cluster ${r.data.name} created (${baselineLine(r.data)})`;
    this.newName = "";
    this.newBaseline = "";
    void this.refresh();
  }

  private renderHostNode(h: HostUsage) {
    const name = h.name ?? "";
    const opened = this.open.has(name);
    const list = this.vmsOf.get(name);
    const id = `tree-vms-${name}`;
    return html`<li data-tree-host=${name}>
      <button type="button" class="twisty" aria-expanded=${opened ? "true" : "false"} aria-controls=${id}
        aria-label="VMs of ${name}" @click=${() => this.toggleHost(name)}>${opened ? "▾" : "▸"}</button>
      <a href="/hosts/${name}">${name}</a> ${stateBadge(h.state)} <span class="muted">${h.vms} VM${h.vms === 1 ? "" : "s"}</span>
      ${opened
        ? html`<ul id=${id} class="tree-vms" aria-label="VMs of ${name}">
            ${!list ? html`<li class="muted">Loading…</li>` : nothing}
            ${list?.error ? html`<li class="error-text">${list.error}</li>` : nothing}
            ${list && !list.error && list.vms.length === 0 ? html`<li class="muted">no VMs</li>` : nothing}
            ${repeat(list?.vms ?? [], (v) => v.name ?? "", (v) => html`<li data-tree-vm=${v.name ?? ""}>
              <a href="/vms/${v.name ?? ""}">${v.name}</a> ${stateBadge(vmState(v))}</li>`)}
            ${list?.more ? html`<li><a href="/hosts/${name}">All ${h.vms} VMs of ${name}…</a></li>` : nothing}
          </ul>`
        : nothing}
    </li>`;
  }

  private renderTree() {
    const tree = clusterTree(this.clusters, this.hosts);
    if (tree.length === 0) return html`<p class="muted">No clusters yet.</p>`;
    return html`<ul class="tree" aria-label="Clusters, hosts and VMs">
      ${repeat(tree, (c) => c.name, (c) => {
        const folded = this.closed.has(c.name);
        const id = `tree-hosts-${c.name}`;
        return html`<li data-tree-cluster=${c.name}>
          <button type="button" class="twisty" aria-expanded=${folded ? "false" : "true"} aria-controls=${id}
            aria-label="Hosts of cluster ${c.name}" @click=${() => this.toggleCluster(c.name)}>${folded ? "▸" : "▾"}</button>
          <a href="/clusters/${c.name}"><strong>${c.name}</strong></a>
          <span class="muted">${c.cluster ? `CPU ${baselineLine(c.cluster)}` : ""} · ${c.hosts.length} host${c.hosts.length === 1 ? "" : "s"}</span>
          ${folded
            ? nothing
            : html`<ul id=${id} aria-label="Hosts of cluster ${c.name}">
                ${c.hosts.length === 0 ? html`<li class="muted">no hosts</li>` : nothing}
                ${repeat(c.hosts, (h) => h.name ?? "", (h) => this.renderHostNode(h))}
              </ul>`}
        </li>`;
      })}
    </ul>`;
  }

  private renderCreate() {
    const bad = this.formError;
    return html`<form class="toolbar" aria-labelledby="cl-new-h" @submit=${(e: SubmitEvent) => this.create(e)}>
        <h3 id="cl-new-h">New cluster</h3>
        <label for="cl-new-name">Name</label>
        <input id="cl-new-name" .value=${this.newName} spellcheck="false" aria-invalid=${bad?.field === "name" ? "true" : "false"}
          @input=${(e: InputEvent) => { this.newName = (e.target as HTMLInputElement).value; }} />
        <label for="cl-new-baseline">CPU baseline</label>
        <input id="cl-new-baseline" list="cl-models" placeholder="auto" .value=${this.newBaseline} spellcheck="false"
          aria-invalid=${bad?.field === "cpu_baseline" ? "true" : "false"}
          @input=${(e: InputEvent) => { this.newBaseline = (e.target as HTMLInputElement).value; }} />
        ${modelList("cl-models", this.clusters.map((c) => c.cpu_model ?? ""))}
        <button type="submit">Create cluster</button>
      </form>
      ${bad ? html`<p class="error" role="alert">${bad.message}</p>` : nothing}
      ${this.formMessage ? html`<p class="notice" role="status">${this.formMessage}</p>` : nothing}`;
  }

  override render() {
    const admin = this.role === "admin";
    return html`<h1>Inventory</h1>${this.renderError()}
      <div class="cols">
        <section aria-labelledby="inv-tree-h">
          <h2 id="inv-tree-h">Clusters, hosts and VMs</h2>
          ${this.loaded ? this.renderTree() : html`<p role="status">Loading…</p>`}
        </section>
        <section aria-labelledby="inv-clusters-h">
          <h2 id="inv-clusters-h">Clusters</h2>
          <table class="grid" aria-label="Clusters">
            <thead><tr><th scope="col">Cluster</th><th scope="col">CPU baseline</th><th scope="col">Hosts</th></tr></thead>
            <tbody>${repeat(this.clusters, (c) => c.name, (c) => html`<tr data-cluster=${c.name}>
              <th scope="row"><a href="/clusters/${c.name}">${c.name}</a></th>
              <td>${baselineLine(c)}</td><td>${typeof c.hosts === "number" ? c.hosts : "-"}</td></tr>`)}</tbody>
          </table>
          ${admin ? this.renderCreate() : nothing}
        </section>
      </div>`;
  }
}
customElements.define("strata-inventory", InventoryPage);

class ClusterPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    name: { attribute: false },
    cluster: { state: true },
    hosts: { state: true },
    gone: { state: true },
    baseline: { state: true },
    moving: { state: true },
    busy: { state: true },
    message: { state: true },
    failed: { state: true },
  };
  name = "";
  cluster: Cluster | null = null;
  hosts: HostUsage[] = [];  // every host (the move's choices)
  gone = false;
  baseline = "";
  moving = "";
  busy = false;
  message = "";
  failed = false;

  protected override wants(e: StrataEvent | undefined): boolean {
    const t = e?.target ?? "";
    return t === `cluster/${this.name}` || t.startsWith("host/");
  }

  protected async load(): Promise<void> {
    const [c, summary] = await Promise.all([
      api.GET("/api/v1/clusters/{name}", { params: { path: { name: this.name } } }),
      loadSummary(),
    ]);
    this.hosts = summary.hosts.items;
    if (c.response.status === 404) {
      this.gone = true;
      this.cluster = null;
      return;
    }
    if (!c.data) throw new Error(errorText(c.error, `cannot read cluster ${this.name}`));
    this.gone = false;
    this.cluster = c.data;
  }

  private said(error: unknown, ok: string): void {
    this.failed = !!error;
    this.message = error ? errorText(error) : ok;
  }

  private async setBaseline(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const b = baselineValue(this.baseline);
    if (b.error) {
      this.said({ error: b.error }, "");
      return;
    }
    this.busy = true;
    const r = await api.PATCH("/api/v1/clusters/{name}", { params: { path: { name: this.name } }, body: { cpu_baseline: b.value! } });
    this.busy = false;
    this.said(r.error, r.data ? `CPU baseline set: ${baselineLine(r.data)}` : "");
    if (r.data) this.baseline = "";
    void this.refresh();
  }

  private async move(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const host = this.moving || hostsOutside(this.hosts, this.name)[0] || "";
    if (!host) return;
    this.busy = true;
    const r = await api.PATCH("/api/v1/hosts/{name}", { params: { path: { name: host } }, body: { cluster: this.name } });
    this.busy = false;
    this.said(r.error, `${host} moved to ${this.name}`);
    if (r.data) this.moving = "";
    void this.refresh();
  }

  private renderHosts(list: ClusterHost[]) {
    if (list.length === 0) return html`<p class="muted">No hosts in this cluster.</p>`;
    return html`<table class="grid" aria-label="Hosts of this cluster">
      <thead><tr><th scope="col">Host</th><th scope="col">State</th><th scope="col">Offers the baseline</th>
        <th scope="col">Best model alone</th></tr></thead>
      <tbody>${repeat(list, (h) => h.name ?? "", (h) => html`<tr data-host=${h.name ?? ""}>
        <th scope="row"><a href="/hosts/${h.name ?? ""}">${h.name}</a></th>
        <td>${stateBadge(h.state)}</td>
        <td>${!h.cpu_models_probed ? html`<span class="muted">not probed (older agent)</span>`
          : h.offers_baseline ? "yes" : html`<span class="error-text">no</span>${h.why_not ? html`: ${h.why_not}` : nothing}`}</td>
        <td>${h.best_cpu_model ?? "-"}</td></tr>`)}</tbody>
    </table>`;
  }

  override render() {
    if (this.gone)
      return html`<h1>Cluster ${this.name}</h1><p role="status">There is no cluster named ${this.name}. <a href="/inventory">Inventory</a></p>`;
    const c = this.cluster;
    if (!c) return html`<h1>Cluster ${this.name}</h1>${this.renderError()}<p role="status">Loading…</p>`;
    const list = Array.isArray(c.hosts) ? (c.hosts as ClusterHost[]) : [];
    const admin = this.role === "admin";
    const movable = hostsOutside(this.hosts, this.name);
    const moving = this.moving || movable[0] || "";
    const fixed = c.cpu_baseline !== "auto";
    return html`<h1>Cluster ${c.name}</h1>${this.renderError()}
      ${this.message ? html`<p class=${this.failed ? "error" : "notice"} role=${this.failed ? "alert" : "status"}>${this.message}</p>` : nothing}
      <div class="cols">
        <section aria-labelledby="cl-cpu-h">
          <h2 id="cl-cpu-h">CPU baseline</h2>
          <dl class="facts">
            <dt>Setting</dt><dd data-cluster-setting>${fixed ? html`fixed: <code>${c.cpu_baseline}</code>` : "auto (the most capable model every host offers)"}</dd>
            <dt>In force</dt><dd data-cluster-model>${c.cpu_model ?? html`<span class="muted">none yet</span>`}</dd>
            <dt>Why</dt><dd data-cluster-reason>${c.cpu_reason || "-"}</dd>
          </dl>
          <p class="muted">VMs that name no CPU model start with the model in force, so they can move to any host of the cluster.</p>
          ${admin
            ? html`<form class="toolbar" aria-label="Set the CPU baseline" @submit=${(e: SubmitEvent) => this.setBaseline(e)}>
                <label for="cl-baseline">New baseline</label>
                <input id="cl-baseline" list="cl-page-models" placeholder=${fixed ? "auto" : c.cpu_model ?? "auto"} .value=${this.baseline}
                  spellcheck="false" @input=${(e: InputEvent) => { this.baseline = (e.target as HTMLInputElement).value; }} />
                ${modelList("cl-page-models", [c.cpu_model ?? "", ...list.map((h) => h.best_cpu_model ?? "")])}
                <button type="submit" ?disabled=${this.busy}>Set baseline</button>
              </form>`
            : nothing}
        </section>
        <section aria-labelledby="cl-move-h">
          <h2 id="cl-move-h">Hosts</h2>
          <p>${list.length} host${list.length === 1 ? "" : "s"}. <a href="/inventory">All clusters</a></p>
          ${canOperate(this.role) && movable.length
            ? html`<form class="toolbar" aria-label="Move a host to this cluster" @submit=${(e: SubmitEvent) => this.move(e)}>
                <label for="cl-move">Move host</label>
                <select id="cl-move" @change=${(e: Event) => { this.moving = (e.target as HTMLSelectElement).value; }}>
                  ${movable.map((h) => html`<option value=${h} ?selected=${h === moving}>${h}
                    (${this.hosts.find((x) => x.name === h)?.cluster ?? "default"})</option>`)}
                </select>
                <button type="submit" ?disabled=${this.busy}>Move to ${c.name}</button>
              </form>`
            : nothing}
        </section>
      </div>
      <section aria-labelledby="cl-hosts-h">
        <h2 id="cl-hosts-h">Hosts of ${c.name}</h2>
        ${this.renderHosts(list)}
      </section>`;
  }
}
customElements.define("strata-cluster", ClusterPage);
