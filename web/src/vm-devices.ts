// The VM page's Disks and NICs (issue 12: hot-plug, disk resize): the spec's disks and NICs
// with where each sits (placed at boot, or its hot-plug slot), and for operators: grow a
// disk, detach a disk or NIC behind a dialog (a disk's data is deleted), attach a disk
// (blank, or an overlay of a catalog disk image) or a NIC. Each change is a task of the VM,
// followed here until it ends (backup-tasks.ts); then the page reads the VM again, whose spec
// records the device as its host placed it. The rules: devices-logic.ts.
import { LitElement, html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, type Task, type Vm } from "./api/client";
import { envelopeProblem, type FieldProblem } from "./backup-logic";
import { TaskWatch, renderStarted } from "./backup-tasks";
import { actionError, describedBy, fieldError } from "./backup-view";
import {
  EMPTY_DISK_FORM,
  EMPTY_NIC_FORM,
  SIZE_UNITS,
  canAttach,
  deviceProblem,
  diskActions,
  diskAttachBody,
  nicActions,
  nicAttachBody,
  qemuRuns,
  resizeBody,
  sizeInput,
  slotText,
  specDisks,
  specNics,
  type Allowed,
  type Disk,
  type DiskForm,
  type Nic,
  type NicForm,
  type SizeUnit,
} from "./devices-logic";
import { bytes, canOperate, type Role } from "./format";

type Pending = { kind: "disk"; disk: Disk } | { kind: "nic"; nic: Nic };
const DISK_FIELDS = ["disk.name", "disk.image", "disk.size_bytes", "disk.datastore"];
const NIC_FIELDS = ["nic.bridge", "nic.mac"];

// A row's button: disabled with the reason as its tooltip when the VM's state refuses it.
function rowButton(label: string, name: string, allowed: Allowed, danger: boolean, click: () => void) {
  return html`<button type="button" class=${danger ? "danger" : "secondary"} aria-label=${name} ?disabled=${!allowed.ok}
    title=${allowed.ok ? nothing : allowed.why} @click=${click}>${label}</button>`;
}

class VmDevices extends LitElement {
  static override properties = {
    vm: { attribute: false },
    role: { attribute: false },
    images: { attribute: false },
    datastores: { attribute: false },
    reload: { attribute: false },
    diskForm: { state: true },
    diskOpen: { state: true },
    diskProblem: { state: true },
    nicForm: { state: true },
    nicOpen: { state: true },
    nicProblem: { state: true },
    rowProblem: { state: true },
    resizing: { state: true },
    resizeText: { state: true },
    resizeUnit: { state: true },
    resizeProblem: { state: true },
    pending: { state: true },
    started: { state: true },
    busy: { state: true },
    message: { state: true },
  };
  vm: Vm | null = null;
  role: Role | "" = "";
  images: string[] = [];  // the catalog's disk images (an attached disk's base)
  datastores: string[] = [];  // the datastores the VM's host mounts (an attached disk's home)
  reload: () => void = () => {};
  diskForm: DiskForm = EMPTY_DISK_FORM;
  diskOpen = false;
  diskProblem: FieldProblem | null = null;
  nicForm: NicForm = EMPTY_NIC_FORM;
  nicOpen = false;
  nicProblem: FieldProblem | null = null;
  rowProblem: FieldProblem | null = null;  // a detach or resize the API refused
  resizing = "";  // the disk whose resize form is open
  resizeText = "";
  resizeUnit: SizeUnit = "GiB";
  resizeProblem: FieldProblem | null = null;
  pending: Pending | null = null;  // the detach the dialog asks about
  started: TaskWatch["list"] = [];
  busy = false;
  message = "";
  private watch = new TaskWatch((ended) => {
    this.started = this.watch.list;
    if (ended.length) this.reload();
  });

  protected override createRenderRoot() {
    return this;
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.watch.stop();
  }

  private get name(): string {
    return this.vm?.name ?? "";
  }

  // A change the API took: its task followed here (the spec of a VM on no host changed at
  // once, and the page's Recent tasks list the new task: the VM is read again either way).
  private follow(task: Task | undefined, what: string): void {
    this.message = `${what}: started`;
    if (task) this.watch.add({ task, what, backup: "" });
    this.reload();
  }

  private async attachDisk(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const body = diskAttachBody(this.diskForm, specDisks(this.vm?.spec));
    if (!body.ok) return void (this.diskProblem = body.problem);
    this.busy = true;
    const { data, error } = await api.POST("/api/v1/vms/{name}/disks", { params: { path: { name: this.name } }, body: body.value });
    this.busy = false;
    if (!data) return void (this.diskProblem = deviceProblem(envelopeProblem(error, "the attach was refused")));
    this.diskProblem = null;
    this.diskForm = EMPTY_DISK_FORM;
    this.diskOpen = false;
    this.follow(data.task, `attach disk ${body.value.name}`);
  }

  private async attachNic(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const body = nicAttachBody(this.nicForm, specNics(this.vm?.spec));
    if (!body.ok) return void (this.nicProblem = body.problem);
    this.busy = true;
    const { data, error } = await api.POST("/api/v1/vms/{name}/nics", { params: { path: { name: this.name } }, body: body.value });
    this.busy = false;
    if (!data) return void (this.nicProblem = deviceProblem(envelopeProblem(error, "the attach was refused")));
    this.nicProblem = null;
    this.nicForm = EMPTY_NIC_FORM;
    this.nicOpen = false;
    this.follow(data.task, `attach a ${body.value.mode} NIC${body.value.bridge ? ` on ${body.value.bridge}` : ""}`);
  }

  private openResize(d: Disk): void {
    const now = sizeInput(d.size_bytes);
    this.resizing = d.name;
    this.resizeText = now.text;
    this.resizeUnit = now.unit;
    this.resizeProblem = null;
  }

  private async resize(ev: SubmitEvent, d: Disk): Promise<void> {
    ev.preventDefault();
    const body = resizeBody(this.resizeText, this.resizeUnit, d.size_bytes);
    if (!body.ok) return void (this.resizeProblem = body.problem);
    this.busy = true;
    const { data, error } = await api.POST("/api/v1/vms/{name}/disks/{disk}/resize",
      { params: { path: { name: this.name, disk: d.name } }, body: body.value });
    this.busy = false;
    if (!data) return void (this.resizeProblem = envelopeProblem(error, "the resize was refused"));
    this.resizeProblem = null;
    this.resizing = "";
    this.follow(data.task, `grow disk ${d.name} to ${bytes(body.value.size_bytes)}`);
  }

  private ask(p: Pending): void {
    this.pending = p;
    this.rowProblem = null;
    void this.updateComplete.then(() => this.querySelector<HTMLDialogElement>("#device-dialog")?.showModal());
  }

  private close(): void {
    this.querySelector<HTMLDialogElement>("#device-dialog")?.close();
    this.pending = null;
  }

  private async detach(p: Pending): Promise<void> {
    const name = this.name;
    this.busy = true;
    const r = p.kind === "disk"
      ? await api.DELETE("/api/v1/vms/{name}/disks/{disk}", { params: { path: { name, disk: p.disk.name } } })
      : await api.DELETE("/api/v1/vms/{name}/nics/{mac}", { params: { path: { name, mac: p.nic.mac ?? "" } } });
    this.busy = false;
    this.close();
    if (!r.data) return void (this.rowProblem = envelopeProblem(r.error, "the detach was refused"));
    this.rowProblem = null;
    this.follow(r.data.task, p.kind === "disk" ? `detach disk ${p.disk.name}` : `detach NIC ${p.nic.mac ?? ""}`);
  }

  private setDisk(patch: Partial<DiskForm>): void {
    this.diskForm = { ...this.diskForm, ...patch };
  }

  private setNic(patch: Partial<NicForm>): void {
    this.nicForm = { ...this.nicForm, ...patch };
  }

  override render() {
    const vm = this.vm;
    if (!vm) return nothing;
    const operate = canOperate(this.role);
    const disks = specDisks(vm.spec);
    const nics = specNics(vm.spec);
    return html`
      ${operate && this.message ? html`<p class="notice" role="status">${this.message}</p>` : nothing}
      ${operate ? actionError(this.rowProblem, []) : nothing}
      <section aria-labelledby="vm-disks-h" data-disks=${disks.length}>
        <h2 id="vm-disks-h">Disks</h2>
        ${this.renderDisks(vm, disks, operate)}
        ${operate ? this.renderAttachDisk(vm, disks) : nothing}
      </section>
      <section aria-labelledby="vm-nics-h" data-nics=${nics.length}>
        <h2 id="vm-nics-h">NICs</h2>
        ${this.renderNics(vm, nics, operate)}
        ${operate ? this.renderAttachNic(vm, nics) : nothing}
      </section>
      ${operate ? renderStarted(this.started, "vm-dev-tasks-h", "Device tasks started here") : nothing}
      ${operate ? this.renderDialog(vm) : nothing}`;
  }

  private renderDisks(vm: Vm, disks: Disk[], operate: boolean) {
    const cols = operate ? 8 : 7;
    return html`<table class="grid" aria-label="Disks" tabindex="0">
      <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">Image</th><th scope="col">Boot</th>
        <th scope="col">Read-only</th><th scope="col">Datastore</th><th scope="col">Slot</th>${operate ? html`<th scope="col">Actions</th>` : nothing}</tr></thead>
      <tbody>${repeat(disks, (d) => d.name, (d) => {
        const a = diskActions(vm, d);
        return html`<tr data-disk=${d.name} data-slot=${d.hotplug_slot ?? 0}>
          <th scope="row">${d.name}</th>
          <td>${d.size_bytes ? bytes(d.size_bytes) : d.image ? html`<span class="muted">the image's</span>` : "-"}</td>
          <td>${d.image || html`<span class="muted">blank</span>`}</td>
          <td>${d.boot ? "yes" : "-"}</td>
          <td>${d.readonly ? "yes" : "-"}</td>
          <td>${d.datastore || html`<span class="muted">the host's</span>`}</td>
          <td>${slotText(d.hotplug_slot)}</td>
          ${operate ? html`<td><div class="toolbar">
            ${rowButton("Resize…", `Resize disk ${d.name}`, a.resize, false, () => this.openResize(d))}
            ${rowButton("Detach…", `Detach disk ${d.name}`, a.detach, true, () => this.ask({ kind: "disk", disk: d }))}
          </div></td>` : nothing}
        </tr>
        ${operate && this.resizing === d.name ? html`<tr data-resize=${d.name}><td colspan=${cols}>${this.renderResize(vm, d)}</td></tr>` : nothing}`;
      })}</tbody>
    </table>`;
  }

  // Grow one disk: its new size with a unit; live when the VM runs (the guest then grows
  // its partition and file system itself).
  private renderResize(vm: Vm, d: Disk) {
    const p = this.resizeProblem;
    return html`<form class="toolbar" aria-label="Resize disk ${d.name}" @submit=${(e: SubmitEvent) => this.resize(e, d)}>
      <label for="disk-resize-size">New size of ${d.name}</label>
      <input id="disk-resize-size" inputmode="decimal" size="8" spellcheck="false" .value=${this.resizeText}
        aria-invalid=${p?.field === "size_bytes" ? "true" : "false"} aria-describedby=${describedBy(p, "size_bytes", "disk-resize-size")}
        @input=${(e: InputEvent) => { this.resizeText = (e.target as HTMLInputElement).value; }} />
      <select aria-label="Unit of the new size" @change=${(e: Event) => { this.resizeUnit = (e.target as HTMLSelectElement).value as SizeUnit; }}>
        ${SIZE_UNITS.map((u) => html`<option value=${u} ?selected=${u === this.resizeUnit}>${u}</option>`)}
      </select>
      <button type="submit" ?disabled=${this.busy}>Grow</button>
      <button type="button" class="secondary" @click=${() => { this.resizing = ""; this.resizeProblem = null; }}>Cancel</button>
      <span class="muted">Grow only${qemuRuns(vm) ? "; the guest sees the new size at once (grow its partition and file system inside)" : ""}.</span>
      ${fieldError(p, "size_bytes", "disk-resize-size")}
    </form>
    ${actionError(p, ["size_bytes"])}`;
  }

  private renderAttachDisk(vm: Vm, disks: Disk[]) {
    const can = canAttach(vm, "disk", disks.length);
    if (!this.diskOpen)
      return html`<div class="toolbar"><button type="button" class="secondary" ?disabled=${!can.ok} title=${can.ok ? nothing : can.why}
        @click=${() => { this.diskOpen = true; this.diskProblem = null; }}>Attach disk…</button></div>`;
    const f = this.diskForm;
    const p = this.diskProblem;
    const invalid = (key: string) => (p?.field === key ? "true" : "false");
    return html`<form class="toolbar" aria-labelledby="vm-attach-disk-h" @submit=${(e: SubmitEvent) => this.attachDisk(e)}>
      <h3 id="vm-attach-disk-h">Attach disk</h3>
      <label for="disk-name">Disk name</label>
      <input id="disk-name" spellcheck="false" size="12" placeholder="data2" .value=${f.name}
        aria-invalid=${invalid("disk.name")} aria-describedby=${describedBy(p, "disk.name", "disk-name")}
        @input=${(e: InputEvent) => this.setDisk({ name: (e.target as HTMLInputElement).value })} />
      ${fieldError(p, "disk.name", "disk-name")}
      <label for="disk-source">Contents</label>
      <select id="disk-source" @change=${(e: Event) => this.setDisk({ source: (e.target as HTMLSelectElement).value as DiskForm["source"] })}>
        <option value="blank" ?selected=${f.source === "blank"}>blank</option>
        <option value="image" ?selected=${f.source === "image"}>a copy of a disk image</option>
      </select>
      ${f.source === "image"
        ? html`<label for="disk-image">Disk image</label>
          <select id="disk-image" aria-invalid=${invalid("disk.image")} aria-describedby=${describedBy(p, "disk.image", "disk-image")}
            @change=${(e: Event) => this.setDisk({ image: (e.target as HTMLSelectElement).value })}>
            <option value="" ?selected=${!f.image}>${this.images.length ? "choose…" : "no disk image in the catalog"}</option>
            ${this.images.map((i) => html`<option value=${i} ?selected=${i === f.image}>${i}</option>`)}
          </select>${fieldError(p, "disk.image", "disk-image")}`
        : nothing}
      <label for="disk-size">${f.source === "image" ? "Size (optional: grow the image to it)" : "Size"}</label>
      <input id="disk-size" inputmode="decimal" size="8" spellcheck="false" placeholder=${f.source === "image" ? "as is" : "10"} .value=${f.size}
        aria-invalid=${invalid("disk.size_bytes")} aria-describedby=${describedBy(p, "disk.size_bytes", "disk-size")}
        @input=${(e: InputEvent) => this.setDisk({ size: (e.target as HTMLInputElement).value })} />
      <select aria-label="Size unit" @change=${(e: Event) => this.setDisk({ unit: (e.target as HTMLSelectElement).value as SizeUnit })}>
        ${SIZE_UNITS.map((u) => html`<option value=${u} ?selected=${u === f.unit}>${u}</option>`)}
      </select>
      ${fieldError(p, "disk.size_bytes", "disk-size")}
      <label for="disk-datastore">Datastore</label>
      <select id="disk-datastore" aria-invalid=${invalid("disk.datastore")} aria-describedby=${describedBy(p, "disk.datastore", "disk-datastore")}
        title=${this.datastores.length ? nothing : "the VM's host mounts no datastore"}
        @change=${(e: Event) => this.setDisk({ datastore: (e.target as HTMLSelectElement).value })}>
        <option value="" ?selected=${!f.datastore}>the host's own store</option>
        ${this.datastores.map((d) => html`<option value=${d} ?selected=${d === f.datastore}>${d}</option>`)}
      </select>
      ${fieldError(p, "disk.datastore", "disk-datastore")}
      <label><input type="checkbox" .checked=${f.readonly} @change=${(e: Event) => this.setDisk({ readonly: (e.target as HTMLInputElement).checked })} /> read-only</label>
      <button type="submit" ?disabled=${this.busy || !can.ok}>Attach</button>
      <button type="button" class="secondary" @click=${() => { this.diskOpen = false; this.diskProblem = null; }}>Cancel</button>
      <span class="muted">${qemuRuns(vm) ? "Hot-plugged on a free slot: the guest sees it at once." : "The VM has it at its next start."}</span>
    </form>
    ${actionError(p, DISK_FIELDS)}`;
  }

  private renderNics(vm: Vm, nics: Nic[], operate: boolean) {
    return html`<table class="grid" aria-label="NICs" tabindex="0">
      <thead><tr><th scope="col">MAC</th><th scope="col">Mode</th><th scope="col">Bridge</th><th scope="col">VLAN</th><th scope="col">Slot</th>
        ${operate ? html`<th scope="col">Actions</th>` : nothing}</tr></thead>
      <tbody>${repeat(nics, (n, i) => n.mac ?? `i${i}`, (n) => html`<tr data-nic=${n.mac ?? ""} data-slot=${n.hotplug_slot ?? 0}>
        <th scope="row"><code>${n.mac ?? "-"}</code></th><td>${n.mode}</td><td>${n.bridge || "-"}</td><td>${n.vlan ? String(n.vlan) : "-"}</td><td>${slotText(n.hotplug_slot)}</td>
        ${operate ? html`<td>${rowButton("Detach…", `Detach NIC ${n.mac ?? ""}`, nicActions(vm, n).detach, true, () => this.ask({ kind: "nic", nic: n }))}</td>` : nothing}
      </tr>`)}</tbody>
    </table>`;
  }

  private renderAttachNic(vm: Vm, nics: Nic[]) {
    const can = canAttach(vm, "nic", nics.length);
    if (!this.nicOpen)
      return html`<div class="toolbar"><button type="button" class="secondary" ?disabled=${!can.ok} title=${can.ok ? nothing : can.why}
        @click=${() => { this.nicOpen = true; this.nicProblem = null; }}>Attach NIC…</button></div>`;
    const f = this.nicForm;
    const p = this.nicProblem;
    return html`<form class="toolbar" aria-labelledby="vm-attach-nic-h" @submit=${(e: SubmitEvent) => this.attachNic(e)}>
      <h3 id="vm-attach-nic-h">Attach NIC</h3>
      <label for="nic-mode">Mode</label>
      <select id="nic-mode" @change=${(e: Event) => this.setNic({ mode: (e.target as HTMLSelectElement).value as NicForm["mode"] })}>
        <option value="user" ?selected=${f.mode === "user"}>user-mode (NAT by QEMU)</option>
        <option value="bridge" ?selected=${f.mode === "bridge"}>a host bridge</option>
      </select>
      ${f.mode === "bridge"
        ? html`<label for="nic-bridge">Bridge</label>
          <input id="nic-bridge" spellcheck="false" size="10" placeholder="br0" .value=${f.bridge}
            aria-invalid=${p?.field === "nic.bridge" ? "true" : "false"} aria-describedby=${describedBy(p, "nic.bridge", "nic-bridge")}
            @input=${(e: InputEvent) => this.setNic({ bridge: (e.target as HTMLInputElement).value })} />${fieldError(p, "nic.bridge", "nic-bridge")}`
        : nothing}
      <label for="nic-mac">MAC (optional)</label>
      <input id="nic-mac" spellcheck="false" size="17" placeholder="the manager's choice" .value=${f.mac}
        aria-invalid=${p?.field === "nic.mac" ? "true" : "false"} aria-describedby=${describedBy(p, "nic.mac", "nic-mac")}
        @input=${(e: InputEvent) => this.setNic({ mac: (e.target as HTMLInputElement).value })} />
      ${fieldError(p, "nic.mac", "nic-mac")}
      <button type="submit" ?disabled=${this.busy || !can.ok}>Attach</button>
      <button type="button" class="secondary" @click=${() => { this.nicOpen = false; this.nicProblem = null; }}>Cancel</button>
      <span class="muted">${qemuRuns(vm) ? "Hot-plugged on a free slot." : "The VM has it at its next start."}</span>
    </form>
    ${actionError(p, NIC_FIELDS)}`;
  }

  private renderDialog(vm: Vm) {
    const p = this.pending;
    if (!p) return html`<dialog id="device-dialog" aria-label="Detach a device"></dialog>`;
    const live = qemuRuns(vm);
    const title = p.kind === "disk" ? `Detach disk ${p.disk.name}?` : `Detach NIC ${p.nic.mac ?? ""}?`;
    return html`<dialog id="device-dialog" aria-labelledby="dev-dlg-h" @close=${() => { this.pending = null; }}>
      <h2 id="dev-dlg-h">${title}</h2>
      ${p.kind === "disk"
        ? html`<p>Disk ${p.disk.name}${p.disk.size_bytes ? ` (${bytes(p.disk.size_bytes)})` : ""} leaves VM ${vm.name} and <strong>its data is deleted</strong>. This cannot be undone.</p>`
        : html`<p>The ${p.nic.mode} NIC ${p.nic.mac ?? ""}${p.nic.bridge ? ` on ${p.nic.bridge}` : ""} leaves VM ${vm.name}; the guest loses that network interface.</p>`}
      ${live ? html`<p class="muted">The guest is asked to release it and has 30 s to; otherwise the task fails and the VM keeps it.</p>` : nothing}
      <div class="toolbar">
        <button type="button" class="danger" ?disabled=${this.busy} @click=${() => this.detach(p)}>${p.kind === "disk" ? `Detach and delete ${p.disk.name}` : "Detach the NIC"}</button>
        <button type="button" class="secondary" @click=${() => this.close()}>Cancel</button>
      </div>
    </dialog>`;
  }
}
customElements.define("strata-vm-devices", VmDevices);
