// A VM table paged, sorted and filtered by the server (`GET /api/v1/vms?limit&after&host&
// name&state&label&sort`): the base of the VM list (/vms) and of a host page's VMs. It holds
// the filter (kept in the page's URL, so a reload or a shared link shows the same list), the
// cursor pager, the filter toolbar, the name column's sort button and the page buttons; the
// pages add their columns and their own controls.
import { html, nothing, type TemplateResult } from "lit";
import { api, errorText, type StrataEvent, type Vm } from "./api/client";
import { CursorPager, VM_STATES, vmListFilterFromUrl, vmListSearch, type VmListFilter } from "./format";
import { LivePage } from "./live-page";
import { fetchOnce } from "./prefetch";

export const PAGE_SIZES = [25, 50, 100, 500];

// One page of VMs (limit, after, host, name, state, label, sort: vmListQuery).
export const fetchVmPage = (query: Record<string, string | number>) => api.GET("/api/v1/vms", { params: { query } });
// The key of a VM page's request, shared by the prefetch and the page that takes it.
export const vmPageKey = (query: Record<string, string | number>) => `vm-page:${JSON.stringify(query)}`;

export type VmFilter = Required<VmListFilter>;

export interface FilterToolbar {
  ids: string;  // prefix of the controls' ids ("vm" -> vm-name, vm-state, ...)
  label: string;  // the form's accessible name
  hosts?: string[];  // given: a Host filter with these hosts first
  extra?: TemplateResult;  // controls after Apply (the VM list's quick filter)
}

export abstract class VmTablePage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    vms: { state: true },
    filter: { state: true },
  };
  vms: Vm[] = [];
  filter: VmFilter = vmListFilterFromUrl("");
  protected readonly pager = new CursorPager();

  // The request for the filter and cursor (an error: a filter the API would refuse).
  protected abstract query(): { query: Record<string, string | number>; error?: string };
  // The message of a failed list request.
  protected abstract listFailed(): string;
  // The filter or the page changed (the VM list drops its selection).
  protected listChanged(): void {}
  // The filter as this page reads it from its URL.
  protected filterFromUrl(search: string): VmFilter {
    return vmListFilterFromUrl(search);
  }

  override connectedCallback(): void {
    this.filter = this.filterFromUrl(location.search);
    super.connectedCallback();
  }

  // VM events only (a token made or an image uploaded does not reload 500 rows).
  protected override wants(e: StrataEvent | undefined): boolean {
    return (e?.target ?? "").startsWith("vm/");
  }

  protected async load(): Promise<void> {
    const { query, error: bad } = this.query();
    if (bad) throw new Error(bad);
    const { data, error } = await fetchOnce(vmPageKey(query), () => fetchVmPage(query));
    if (!data) throw new Error(errorText(error, this.listFailed()));
    this.vms = data.vms ?? [];
    this.pager.loaded(data.next);
  }

  // A text box changes the filter only; a select, the sort and Apply also fetch.
  protected setFilter(change: Partial<VmFilter>, apply: boolean): void {
    this.filter = { ...this.filter, ...change };
    if (apply) this.applyFilters();
  }

  protected applyFilters(): void {
    const search = vmListSearch(this.filter);
    history.replaceState(null, "", location.pathname + (search ? `?${search}` : ""));
    this.listChanged();
    this.pager.reset();
    void this.refresh();
  }

  protected turn(forward: boolean): void {
    if (forward) this.pager.next();
    else this.pager.previous();
    this.listChanged();
    void this.refresh();
  }

  protected renderFilters(t: FilterToolbar) {
    const f = this.filter;
    const text = (key: "name" | "label") => (e: InputEvent) => this.setFilter({ [key]: (e.target as HTMLInputElement).value }, false);
    const chosen = (key: "host" | "state") => (e: Event) => this.setFilter({ [key]: (e.target as HTMLSelectElement).value }, true);
    return html`<form class="toolbar" aria-label=${t.label} @submit=${(e: SubmitEvent) => { e.preventDefault(); this.applyFilters(); }}>
        ${t.hosts
          ? html`<label for="${t.ids}-host">Host</label>
            <select id="${t.ids}-host" .value=${f.host} @change=${chosen("host")}>
              <option value="" ?selected=${f.host === ""}>all hosts</option>
              ${t.hosts.map((h) => html`<option value=${h} ?selected=${f.host === h}>${h}</option>`)}
            </select>`
          : nothing}
        <label for="${t.ids}-name">Name</label>
        <input id="${t.ids}-name" type="search" placeholder="part of the name" .value=${f.name} @input=${text("name")} />
        <label for="${t.ids}-state">State</label>
        <select id="${t.ids}-state" @change=${chosen("state")}>
          <option value="" ?selected=${f.state === ""}>any state</option>
          ${VM_STATES.map((st) => html`<option value=${st} ?selected=${f.state === st}>${st}</option>`)}
        </select>
        <label for="${t.ids}-label">Label</label>
        <input id="${t.ids}-label" type="search" placeholder="key=value" .value=${f.label} @input=${text("label")} />
        <label for="${t.ids}-limit">Per page</label>
        <select id="${t.ids}-limit" @change=${(e: Event) => this.setFilter({ limit: Number((e.target as HTMLSelectElement).value) }, true)}>
          ${[...new Set([...PAGE_SIZES, f.limit])].sort((a, b) => a - b).map((n) => html`<option value=${n} ?selected=${f.limit === n}>${n}</option>`)}
        </select>
        <button type="submit" class="secondary">Apply</button>
        ${t.extra ?? nothing}
      </form>`;
  }

  // The Name column's header: sorts on the server, ascending and descending in turn.
  protected renderNameHeader() {
    const sort = this.filter.sort;
    return html`<th scope="col" aria-sort=${sort === "name" ? "ascending" : sort === "-name" ? "descending" : "none"}>
      <button type="button" class="sort" @click=${() => this.setFilter({ sort: sort === "name" ? "-name" : "name" }, true)}
        aria-label="Sort by name ${sort === "name" ? "descending" : "ascending"}">Name ${sort === "name" ? "▲" : sort === "-name" ? "▼" : ""}</button></th>`;
  }

  protected renderPager(label: string, status: string) {
    return html`<nav class="toolbar pager" aria-label=${label}>
        <button type="button" class="secondary" ?disabled=${!this.pager.hasPrevious} @click=${() => this.turn(false)}>Previous page</button>
        <span role="status">${status}</span>
        <button type="button" class="secondary" ?disabled=${!this.pager.hasNext} @click=${() => this.turn(true)}>Next page</button>
      </nav>`;
  }
}
