// The create wizard (/create): name, size, images from the catalog, disk, NIC, labels,
// node selector, a host by hand or the scheduler's choice. While the form changes, the
// dry run POST /api/v1/placement (debounced) shows where the VM would go and why not on
// every other host; "Create" then POSTs /api/v1/vms and follows the VM's task and state
// from the live event stream (no polling).
import { html, nothing } from "lit";
import { api, errorText, type StrataEvent, type Task, type Vm } from "./api/client";
import { canOperate } from "./format";
import { LivePage, listHosts, stateBadge } from "./pages";
import {
  BLANK_DISK, BOOT_LABEL, BOOT_ORDERS, EMPTY_FORM, MAX_DISKS, MAX_NICS, USER_NIC, diskName, formKeyOfField,
  placementHeadline, placementRows, vmCreateBody, type DiskRow, type FormKey, type Invalid, type NicRow,
  type PlacementPreview, type WizardForm,
} from "./wizard";

type Image = { name?: string; kind?: string };

class CreateVmPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    form: { state: true },
    images: { state: true },
    hosts: { state: true },
    cpuModels: { state: true },
    datastores: { state: true },
    preview: { state: true },
    problem: { state: true },
    invalid: { state: true },
    asking: { state: true },
    creating: { state: true },
    task: { state: true },
    vm: { state: true },
  };
  form: WizardForm = { ...EMPTY_FORM };
  images: Image[] = [];
  hosts: string[] = [];
  cpuModels: string[] = [];  // the clusters' baselines in force, offered in the CPU model list
  datastores: string[] = [];  // the datastores some host mounts (GET /api/v1/summary)
  preview: PlacementPreview | null = null;
  problem = "";  // the form's or the server's objection, with the field
  invalid: Invalid | null = null;  // the same, shown next to its control when the form has one
  asking = false;
  creating = false;
  task: Task | null = null;
  vm: Vm | null = null;
  private debounce: number | undefined;
  private recheck: number | undefined;
  private recheckMs = 1000;
  private asked = 0;  // only the latest dry run's answer is shown

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.clearTimeout(this.debounce);
    window.clearTimeout(this.recheck);
  }

  protected override wants(e: StrataEvent | undefined): boolean {
    return !!this.vm && e?.target === `vm/${this.vm.name}`;
  }

  protected async load(): Promise<void> {
    if (this.vm) {
      // After "Create": the VM's task and state, again on each of its events.
      const [vm, task] = await Promise.all([
        api.GET("/api/v1/vms/{name}", { params: { path: { name: this.vm.name ?? "" } } }),
        this.task?.id ? api.GET("/api/v1/tasks/{id}", { params: { path: { id: this.task.id } } }) : null,
      ]);
      if (vm.data) this.vm = vm.data;
      if (task?.data) this.task = task.data;
      // The controller ends the task right after the VM's last state event, and task
      // progress has no event of its own: while the task is open, look once more after
      // 1, 2, 4, 8 s (then every 8 s), besides the reloads the VM's events cause.
      window.clearTimeout(this.recheck);
      if (this.task && this.task.state !== "succeeded" && this.task.state !== "failed") {
        this.recheck = window.setTimeout(() => void this.refresh(), this.recheckMs);
        this.recheckMs = Math.min(this.recheckMs * 2, 8000);
      }
      return;
    }
    const [images, hosts, clusters, summary] = await Promise.all([
      api.GET("/api/v1/images", { params: { query: { limit: 1000 } } }),
      listHosts(),
      api.GET("/api/v1/clusters"),
      api.GET("/api/v1/summary"),
    ]);
    if (!images.data) throw new Error(errorText(images.error, "cannot list images"));
    this.images = (images.data.images ?? []) as Image[];
    this.hosts = hosts.map((h) => h.name ?? "").filter(Boolean);
    const models = (clusters.data?.clusters ?? []).map((c) => c.cpu_model ?? "").filter(Boolean);
    this.cpuModels = [...new Set(models)].sort();
    this.datastores = (summary.data?.datastores.items ?? []).map((d) => d.name).sort();
  }

  private set(key: keyof WizardForm, value: WizardForm[keyof WizardForm]): void {
    this.form = { ...this.form, [key]: value };
    this.changed();
  }

  private setDisk(i: number, change: Partial<DiskRow>): void {
    this.set("disks", this.form.disks.map((d, j) => (j === i ? { ...d, ...change } : d)));
  }

  private setNic(i: number, change: Partial<NicRow>): void {
    this.set("nics", this.form.nics.map((n, j) => (j === i ? { ...n, ...change } : n)));
  }

  // Removing a row moves the focus to the list's Add button (the row's controls are gone).
  private removeRow(key: "disks" | "nics", i: number): void {
    const rows = this.form[key] as unknown[];
    this.set(key, rows.filter((_, j) => j !== i) as WizardForm[typeof key]);
    void this.updateComplete.then(() => this.querySelector<HTMLElement>(`#cw-${key}`)?.focus());
  }

  private changed(): void {
    // Every change asks the scheduler again (debounced), and its answer replaces the objection.
    window.clearTimeout(this.debounce);
    this.debounce = window.setTimeout(() => void this.ask(), 250);
  }

  // The dry run for the form as it is now.
  private async ask(): Promise<void> {
    const { body, error } = vmCreateBody(this.form);
    const n = ++this.asked;
    if (!body) {
      this.preview = null;
      this.problem = error ? `${error.message} (field: ${error.field})` : "";
      this.invalid = error ?? null;
      return;
    }
    this.asking = true;
    const r = await api.POST("/api/v1/placement", { body });
    if (n !== this.asked) return;
    this.asking = false;
    this.preview = r.data ?? null;
    this.problem = r.data ? "" : errorText(r.error, "the scheduler did not answer");
    this.invalid = r.data ? null : invalidOf(r.error);
  }

  private async create(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const { body, error } = vmCreateBody(this.form);
    if (!body) {
      this.problem = error ? `${error.message} (field: ${error.field})` : "";
      this.invalid = error ?? null;
      this.focusInvalid();
      return;
    }
    this.creating = true;
    const r = await api.POST("/api/v1/vms", { body });
    this.creating = false;
    if (!r.data) {
      this.problem = errorText(r.error, "create failed");
      this.invalid = invalidOf(r.error);
      this.focusInvalid();
      return;
    }
    this.vm = r.data.vm ?? null;
    this.task = r.data.task ?? null;
    void this.refresh();
  }

  // The field's objection (the form's or the server's 400/409), if it is this field's.
  private objection(key: FormKey): string {
    return this.invalid && formKeyOfField(this.invalid.field) === key ? this.invalid.message : "";
  }

  private focusInvalid(): void {
    const key = this.invalid ? formKeyOfField(this.invalid.field) : undefined;
    if (key) void this.updateComplete.then(() => this.querySelector<HTMLElement>(`#cw-${key}`)?.focus());
  }

  // The third column: the hint, and the field's objection under it (both describe the control).
  private note(id: string, hint: string | undefined, bad: string) {
    return html`<span class="hint">${hint ? html`<span id="${id}-hint" class="muted">${hint}</span>` : nothing}
      ${bad ? html`<span id="${id}-error" class="error-text field-error">${bad}</span>` : nothing}</span>`;
  }

  private describedBy(id: string, hint: string | undefined, bad: string) {
    const ids = [hint ? `${id}-hint` : "", bad ? `${id}-error` : ""].filter(Boolean).join(" ");
    return ids || nothing;
  }

  private field(key: keyof WizardForm, label: string, opts: { type?: string; hint?: string; placeholder?: string; rows?: number } = {}) {
    return this.input(key, String(this.form[key]), (v) => this.set(key, v), label, opts);
  }

  // A text control with its label, hint and objection; `key` names it (id cw-KEY).
  private input(key: FormKey, value: string, onInput: (v: string) => void, label: string,
    opts: { type?: string; hint?: string; placeholder?: string; rows?: number } = {}) {
    const id = `cw-${key}`;
    const bad = this.objection(key);
    const input = (e: Event) => onInput((e.target as HTMLInputElement | HTMLTextAreaElement).value);
    return html`<label for=${id}>${label}</label>
      ${opts.rows
        ? html`<textarea id=${id} rows=${opts.rows} .value=${value} placeholder=${opts.placeholder ?? ""}
            aria-describedby=${this.describedBy(id, opts.hint, bad)} aria-invalid=${bad ? "true" : "false"} spellcheck="false"
            @input=${input}></textarea>`
        : html`<input id=${id} type=${opts.type ?? "text"} .value=${value} placeholder=${opts.placeholder ?? ""}
            aria-describedby=${this.describedBy(id, opts.hint, bad)} aria-invalid=${bad ? "true" : "false"} spellcheck="false"
            @input=${input} />`}
      ${this.note(id, opts.hint, bad)}`;
  }

  private select(key: keyof WizardForm, label: string, options: string[], none: string) {
    return this.pick(key, String(this.form[key]), (v) => this.set(key, v), label, options, none);
  }

  private pick(key: FormKey, value: string, onChange: (v: string) => void, label: string, options: string[], none: string, hint?: string) {
    const id = `cw-${key}`;
    const bad = this.objection(key);
    return html`<label for=${id}>${label}</label>
      <select id=${id} aria-describedby=${this.describedBy(id, hint, bad)} aria-invalid=${bad ? "true" : "false"}
        @change=${(e: Event) => onChange((e.target as HTMLSelectElement).value)}>
        <option value="" ?selected=${value === ""}>${none}</option>
        ${options.map((o) => html`<option value=${o} ?selected=${value === o}>${o}</option>`)}
      </select>${this.note(id, hint, bad)}`;
  }

  // The disks: one group per disk (image, size, datastore, Remove), then "Add a disk".
  private renderDisks(diskImages: string[]) {
    const rows = this.form.disks;
    const bad = this.objection("disks");
    return html`<fieldset class="group" data-disks=${rows.length}>
      <legend>Disks <span class="muted">(the first is the boot disk; a datastore is shared storage, empty: the host's own store)</span></legend>
      ${rows.map((d, i) => html`<div class="row-head" data-disk=${diskName(i)}>
          <span>Disk ${i + 1}: <code>${diskName(i)}</code>${i === 0 ? " (boot)" : nothing}</span>
          <button type="button" class="secondary" @click=${() => this.removeRow("disks", i)}>Remove disk ${i + 1}</button>
        </div>
        ${this.pick(`disk-${i}-image`, d.image, (v) => this.setDisk(i, { image: v }), `Disk ${i + 1} image`, diskImages, "blank disk")}
        ${this.input(`disk-${i}-size`, d.sizeGib, (v) => this.setDisk(i, { sizeGib: v }), `Disk ${i + 1} size (GiB)`,
          { hint: d.image ? "grow the image to it (empty: as is)" : "the blank disk's size" })}
        ${this.pick(`disk-${i}-datastore`, d.datastore, (v) => this.setDisk(i, { datastore: v }), `Disk ${i + 1} datastore`,
          this.datastores, "the host's own store", this.datastores.length ? undefined : "no host mounts a datastore")}`)}
      <span></span>
      <button type="button" id="cw-disks" ?disabled=${rows.length >= MAX_DISKS} aria-describedby=${this.describedBy("cw-disks", undefined, bad)}
        @click=${() => this.set("disks", [...rows, BLANK_DISK])}>Add a disk</button>
      ${this.note("cw-disks", undefined, bad)}
    </fieldset>`;
  }

  // The NICs: one group per NIC (user-mode or a host bridge, Remove), then "Add a NIC".
  private renderNics() {
    const rows = this.form.nics;
    const bad = this.objection("nics");
    return html`<fieldset class="group" data-nics=${rows.length}>
      <legend>NICs <span class="muted">(none: no network)</span></legend>
      ${rows.map((n, i) => html`<div class="row-head">
          <span>NIC ${i + 1}</span>
          <button type="button" class="secondary" @click=${() => this.removeRow("nics", i)}>Remove NIC ${i + 1}</button>
        </div>
        <label for="cw-nic-${i}-mode">NIC ${i + 1} type</label>
        <select id="cw-nic-${i}-mode" aria-describedby=${this.describedBy(`cw-nic-${i}-mode`, undefined, this.objection(`nic-${i}-mode`))}
          aria-invalid=${this.objection(`nic-${i}-mode`) ? "true" : "false"}
          @change=${(e: Event) => this.setNic(i, { mode: (e.target as HTMLSelectElement).value as NicRow["mode"] })}>
          <option value="user" ?selected=${n.mode === "user"}>user-mode (NAT by QEMU)</option>
          <option value="bridge" ?selected=${n.mode === "bridge"}>a host bridge</option>
        </select>${this.note(`cw-nic-${i}-mode`, undefined, this.objection(`nic-${i}-mode`))}
        ${n.mode === "bridge"
          ? this.input(`nic-${i}-bridge`, n.bridge, (v) => this.setNic(i, { bridge: v }), `NIC ${i + 1} bridge`,
            { placeholder: "br0", hint: "a Linux bridge on the host" })
          : nothing}
        ${n.mode === "bridge"
          ? this.input(`nic-${i}-vlan`, n.vlan ?? "", (v) => this.setNic(i, { vlan: v }), `NIC ${i + 1} VLAN`,
            { placeholder: "none", hint: "802.1Q VLAN id 1..4094 on that bridge; empty: no VLAN" })
          : nothing}`)}
      <span></span>
      <button type="button" id="cw-nics" ?disabled=${rows.length >= MAX_NICS} aria-describedby=${this.describedBy("cw-nics", undefined, bad)}
        @click=${() => this.set("nics", [...rows, USER_NIC])}>Add a NIC</button>
      ${this.note("cw-nics", undefined, bad)}
    </fieldset>`;
  }

  // A select whose options have labels of their own (value -> label).
  private choice(key: keyof WizardForm, label: string, options: Array<[string, string]>, hint?: string) {
    const id = `cw-${key}`;
    const bad = this.objection(key);
    return html`<label for=${id}>${label}</label>
      <select id=${id} aria-describedby=${this.describedBy(id, hint, bad)} aria-invalid=${bad ? "true" : "false"}
        @change=${(e: Event) => this.set(key, (e.target as HTMLSelectElement).value)}>
        ${options.map(([v, l]) => html`<option value=${v} ?selected=${this.form[key] === v}>${l}</option>`)}
      </select>${this.note(id, hint, bad)}`;
  }

  private renderPreview() {
    const p = this.preview;
    if (this.problem) return html`<p class="error" role="alert">${this.problem}</p>`;
    if (!p) return html`<p class="muted">Fill in the form: the scheduler's choice appears here before you create.</p>`;
    return html`<p class=${p.fits ? "notice" : "error"} role="status">${placementHeadline(p)}</p>
      <table class="grid" aria-label="Placement explanation">
        <thead><tr><th scope="col">Host</th><th scope="col">Verdict</th><th scope="col">Why</th></tr></thead>
        <tbody>${placementRows(p).map((r) => html`<tr data-placement=${r.host}>
          <th scope="row">${r.host}</th><td><span class="badge verdict-${r.verdict}">${r.verdict}</span></td><td>${r.why}</td></tr>`)}</tbody>
      </table>`;
  }

  private renderProgress() {
    const vm = this.vm!;
    const t = this.task;
    return html`<section aria-labelledby="cw-done-h">
      <h2 id="cw-done-h">Creating ${vm.name}</h2>
      <dl class="facts">
        <dt>Task</dt><dd>${t?.kind ?? "-"} ${stateBadge(t?.state)}
          ${t && (t.state === "running" || t.state === "pending")
            ? html`<progress max="100" .value=${t.progress ?? 0} aria-label="task progress"></progress>` : nothing}
          <span class="muted">${t?.message ?? ""}</span></dd>
        <dt>Host</dt><dd>${vm.host || "-"}</dd>
        <dt>State</dt><dd>${stateBadge(vm.status?.state)}</dd>
      </dl>
      <p><a href="/vms/${vm.name ?? ""}">Open the VM page of ${vm.name}</a></p>
    </section>`;
  }

  override render() {
    if (!canOperate(this.role))
      return html`<h1>Create a VM</h1><p role="status">Creating VMs needs the operator or admin role.</p>`;
    if (this.vm) return html`<h1>Create a VM</h1>${this.renderError()}${this.renderProgress()}`;
    const byKind = (k: string) => this.images.filter((i) => i.kind === k).map((i) => i.name ?? "");
    return html`<h1>Create a VM</h1>${this.renderError()}
      <div class="cols">
        <section aria-labelledby="cw-form-h">
          <h2 id="cw-form-h">Virtual machine</h2>
          <form class="wizard" @submit=${(e: SubmitEvent) => this.create(e)} aria-labelledby="cw-form-h">
            ${this.field("name", "Name", { hint: "lower-case letters, digits, '-'" })}
            ${this.field("vcpus", "vCPUs", { type: "number" })}
            ${this.field("memoryMib", "Memory (MiB)", { type: "number" })}
            ${this.renderDisks(byKind("disk"))}
            ${this.select("kernel", "Kernel", byKind("kernel"), "none (boot from the disk)")}
            ${this.select("initrd", "Initrd", byKind("initrd"), "none")}
            ${this.field("cmdline", "Kernel command line")}
            ${this.select("cdrom", "CD-ROM", byKind("iso"), "empty")}
            ${this.choice("boot", "Boot order", BOOT_ORDERS.map((b) => [b, BOOT_LABEL[b]]), "firmware boot order (not with a kernel)")}
            ${this.choice("firmware", "Firmware", [["", "BIOS (SeaBIOS)"], ["uefi", "UEFI (OVMF, own variables)"]])}
            ${this.choice("watchdog", "Watchdog", [["", "none"], ["reset", "reset a hung guest"], ["poweroff", "power it off"], ["pause", "pause it"], ["none", "only report it"]], "an i6300esb the guest's watchdog daemon feeds")}
            <label for="cw-cpuModel">CPU model</label>
            <input id="cw-cpuModel" list="cw-cpu-models" .value=${this.form.cpuModel} placeholder="the cluster's baseline"
              aria-describedby=${this.describedBy("cw-cpuModel", "x", this.objection("cpuModel"))}
              aria-invalid=${this.objection("cpuModel") ? "true" : "false"} spellcheck="false"
              @input=${(e: Event) => this.set("cpuModel", (e.target as HTMLInputElement).value)} />
            <datalist id="cw-cpu-models">${["host", "max", ...this.cpuModels].map((m) => html`<option value=${m}></option>`)}</datalist>
            ${this.note("cw-cpuModel", "empty: its cluster's CPU baseline, so it can move within the cluster; host, max or a QEMU model", this.objection("cpuModel"))}
            ${this.field("labels", "Labels", { placeholder: "tier=web, team=a" })}
            ${this.field("nodeSelector", "Node selector", { placeholder: "zone=a", hint: "host labels the VM needs" })}
            ${this.select("host", "Host", this.hosts, "chosen by the scheduler")}
            ${this.renderNics()}
            <label for="cw-vnc">Graphical console (VNC)</label>
            <input id="cw-vnc" type="checkbox" .checked=${this.form.vnc} @change=${(e: Event) => this.set("vnc", (e.target as HTMLInputElement).checked)} /><span></span>
            <label for="cw-start">Start after creating</label>
            <input id="cw-start" type="checkbox" .checked=${this.form.start} @change=${(e: Event) => this.set("start", (e.target as HTMLInputElement).checked)} /><span></span>
            <fieldset class="cloud-init">
              <legend>cloud-init <span class="muted">(optional: read by images with cloud-init, from a seed disk)</span></legend>
              ${this.field("ciHostname", "Guest host name", { placeholder: "default: the VM name" })}
              ${this.field("ciUser", "User", { placeholder: "e.g. admin", hint: "created at first boot" })}
              ${this.field("ciKeys", "SSH public keys", { rows: 2, placeholder: "ssh-ed25519 AAAA… you@laptop", hint: "one a line: the way in for this user" })}
              ${this.field("ciPasswordHash", "Password hash", {
                placeholder: "$6$salt$…",
                hint: "optional, a crypt(3) hash (mkpasswd -m sha-512): a clear-text password is refused and never hashed here; empty: the password stays locked",
              })}
              <label for="cw-ciSudo">Passwordless sudo</label>
              <input id="cw-ciSudo" type="checkbox" .checked=${this.form.ciSudo} @change=${(e: Event) => this.set("ciSudo", (e.target as HTMLInputElement).checked)} /><span></span>
              ${this.field("ciUserData", "User-data", { rows: 4, placeholder: "#cloud-config\npackages: [nginx]", hint: "more cloud-config (or a #! script), merged with the above" })}
            </fieldset>
            <span></span>
            <button type="submit" ?disabled=${this.creating || !this.preview?.fits}>Create</button>
          </form>
        </section>
        <section aria-labelledby="cw-place-h" aria-busy=${this.asking ? "true" : "false"}>
          <h2 id="cw-place-h">Where it goes</h2>
          ${this.renderPreview()}
        </section>
      </div>`;
  }
}
customElements.define("strata-create-vm", CreateVmPage);

// The API's error envelope as a field and a message (none: no field named).
function invalidOf(error: unknown): Invalid | null {
  const e = (error as { error?: { field?: unknown; message?: unknown } } | undefined)?.error;
  return e && typeof e.field === "string" && e.field && typeof e.message === "string" ? { field: e.field, message: e.message } : null;
}
