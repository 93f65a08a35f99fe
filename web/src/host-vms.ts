// The VMs of one host, on its host page: one page at a time from the server
// (`GET /api/v1/vms?host=NAME&limit=N&after=CURSOR&sort=name`), filtered there by name,
// state and label, like the VM list. Filters, sort and page size are in the host page's URL
// (`/hosts/h1?state=running&limit=100`), so a reload or a shared link shows the same list.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { hostVmListQuery, mib, vmState } from "./format";
import { stateBadge } from "./pages";
import { VmTablePage, type VmFilter } from "./vm-table";

function labelList(l: Record<string, string> | undefined) {
  const entries = Object.entries(l ?? {});
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return entries.map(([k, v]) => html`<span class="label">${k}=${v}</span>`);
}

class HostVms extends VmTablePage {
  static override properties = { ...VmTablePage.properties, host: { attribute: false } };
  host = "";

  // Always this host: a `host=` in the URL neither moves the list nor stays in the URL.
  protected override filterFromUrl(search: string): VmFilter {
    return { ...super.filterFromUrl(search), host: "" };
  }

  protected query() {
    return hostVmListQuery(this.host, this.filter, this.pager.cursor);
  }

  protected listFailed(): string {
    return `cannot list the VMs of ${this.host}`;
  }

  override render() {
    return html`${this.renderError()}
      ${this.renderFilters({ ids: "host-vm", label: "Filters of this host's VMs" })}
      ${!this.loaded
        ? html`<p role="status">Loading…</p>`
        : html`<table class="grid" aria-label="VMs on this host">
          <thead><tr>${this.renderNameHeader()}
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
        ${this.renderPager("Pages of this host's VMs", `Page ${this.pager.page} · ${this.vms.length} VMs`)}`}`;
  }
}
customElements.define("strata-host-vms", HostVms);
