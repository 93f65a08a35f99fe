// The VMs of one host, on its host page: one page at a time from the server
// (`GET /api/v1/vms?host=NAME&limit=N&after=CURSOR&sort=name`), filtered there by name,
// state and label, like the VM list. Filters, sort and page size are in the host page's URL
// (`/hosts/h1?state=running&limit=100`), so a reload or a shared link shows the same list.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { errorText, type StrataEvent, type Vm } from "./api/client";
import { CursorPager, hostVmListQuery, mib, vmListFilterFromUrl, vmState, VM_STATES, type VmSort } from "./format";
import { LivePage, PAGE_SIZES, fetchVmPage, stateBadge, vmPageKey } from "./pages";
import { fetchOnce } from "./prefetch";

function labelList(l: Record<string, string> | undefined) {
  const entries = Object.entries(l ?? {});
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return entries.map(([k, v]) => html`<span class="label">${k}=${v}</span>`);
}

class HostVms extends LivePage {
  static override properties = {
    ...LivePage.properties,
    host: { attribute: false },
    vms: { state: true },
    label: { state: true },
    limit: { state: true },
    name: { state: true },
    stateFilter: { state: true },
    sort: { state: true },
  };
  host = "";
  vms: Vm[] = [];
  label = "";
  limit = 50;
  name = "";
  stateFilter = "";
  sort: VmSort = "name";
  private readonly pager = new CursorPager();

  override connectedCallback(): void {
    const f = vmListFilterFromUrl(location.search);
    this.label = f.label;
    this.name = f.name;
    this.stateFilter = f.state;
    this.sort = f.sort;
    this.limit = f.limit;
    super.connectedCallback();
  }

  protected override wants(e: StrataEvent | undefined): boolean {
    return (e?.target ?? "").startsWith("vm/");
  }

  protected async load(): Promise<void> {
    const { query, error: bad } = hostVmListQuery(
      this.host,
      { host: "", label: this.label, limit: this.limit, name: this.name, state: this.stateFilter, sort: this.sort },
      this.pager.cursor,
    );
    if (bad) throw new Error(bad);
    const { data, error } = await fetchOnce(vmPageKey(query), () => fetchVmPage(query));
    if (!data) throw new Error(errorText(error, `cannot list the VMs of ${this.host}`));
    this.vms = data.vms ?? [];
    this.pager.loaded(data.next);
  }

  private applyFilters(): void {
    const q = new URLSearchParams();
    if (this.label.trim()) q.set("label", this.label.trim());
    if (this.name.trim()) q.set("name", this.name.trim());
    if (this.stateFilter) q.set("state", this.stateFilter);
    if (this.sort !== "name") q.set("sort", this.sort);
    if (this.limit !== 50) q.set("limit", String(this.limit));
    const search = q.toString();
    history.replaceState(null, "", location.pathname + (search ? `?${search}` : ""));
    this.pager.reset();
    void this.refresh();
  }

  private turn(forward: boolean): void {
    if (forward) this.pager.next();
    else this.pager.previous();
    void this.refresh();
  }

  override render() {
    const sorted = this.sort === "name" ? "ascending" : this.sort === "-name" ? "descending" : "none";
    return html`${this.renderError()}
      <form class="toolbar" aria-label="Filters of this host's VMs" @submit=${(e: SubmitEvent) => { e.preventDefault(); this.applyFilters(); }}>
        <label for="host-vm-name">Name</label>
        <input id="host-vm-name" type="search" placeholder="part of the name" .value=${this.name}
          @input=${(e: InputEvent) => { this.name = (e.target as HTMLInputElement).value; }} />
        <label for="host-vm-state">State</label>
        <select id="host-vm-state" @change=${(e: Event) => { this.stateFilter = (e.target as HTMLSelectElement).value; this.applyFilters(); }}>
          <option value="" ?selected=${this.stateFilter === ""}>any state</option>
          ${VM_STATES.map((st) => html`<option value=${st} ?selected=${this.stateFilter === st}>${st}</option>`)}
        </select>
        <label for="host-vm-label">Label</label>
        <input id="host-vm-label" type="search" placeholder="key=value" .value=${this.label}
          @input=${(e: InputEvent) => { this.label = (e.target as HTMLInputElement).value; }} />
        <label for="host-vm-limit">Per page</label>
        <select id="host-vm-limit" @change=${(e: Event) => { this.limit = Number((e.target as HTMLSelectElement).value); this.applyFilters(); }}>
          ${[...new Set([...PAGE_SIZES, this.limit])].sort((a, b) => a - b).map((n) => html`<option value=${n} ?selected=${this.limit === n}>${n}</option>`)}
        </select>
        <button type="submit" class="secondary">Apply</button>
      </form>
      ${!this.loaded
        ? html`<p role="status">Loading…</p>`
        : html`<table class="grid" aria-label="VMs on this host">
          <thead><tr><th scope="col" aria-sort=${sorted}>
            <button type="button" class="sort" @click=${() => { this.sort = this.sort === "name" ? "-name" : "name"; this.applyFilters(); }}
              aria-label="Sort by name ${this.sort === "name" ? "descending" : "ascending"}">Name ${this.sort === "name" ? "▲" : this.sort === "-name" ? "▼" : ""}</button></th>
            <th scope="col">State</th><th scope="col">vCPU</th><th scope="col">Memory</th><th scope="col">Labels</th></tr></thead>
          <tbody>${repeat(this.vms, (vm) => vm.name ?? "", (vm) => {
            const spec = (vm.spec ?? {}) as Record<string, unknown>;
            return html`<tr data-vm=${vm.name ?? ""}><th scope="row"><a href="/vms/${vm.name ?? ""}">${vm.name}</a></th>
              <td>${stateBadge(vmState(vm))}</td><td>${typeof spec.vcpus === "number" ? spec.vcpus : "-"}</td>
              <td>${mib(typeof spec.memory_mib === "number" ? spec.memory_mib : undefined)}</td>
              <td class="labels">${labelList(vm.labels)}</td></tr>`;
          })}</tbody>
        </table>
        ${this.vms.length === 0 ? html`<p class="muted">No VM on ${this.host} matches.</p>` : nothing}
        <nav class="toolbar pager" aria-label="Pages of this host's VMs">
          <button type="button" class="secondary" ?disabled=${!this.pager.hasPrevious} @click=${() => this.turn(false)}>Previous page</button>
          <span role="status">Page ${this.pager.page} · ${this.vms.length} VMs</span>
          <button type="button" class="secondary" ?disabled=${!this.pager.hasNext} @click=${() => this.turn(true)}>Next page</button>
        </nav>`}`;
  }
}
customElements.define("strata-host-vms", HostVms);
