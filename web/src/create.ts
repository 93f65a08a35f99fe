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
  EMPTY_FORM, placementHeadline, placementRows, vmCreateBody,
  type PlacementPreview, type WizardForm,
} from "./wizard";

type Image = { name?: string; kind?: string };

class CreateVmPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    form: { state: true },
    images: { state: true },
    hosts: { state: true },
    preview: { state: true },
    problem: { state: true },
    asking: { state: true },
    creating: { state: true },
    task: { state: true },
    vm: { state: true },
  };
  form: WizardForm = { ...EMPTY_FORM };
  images: Image[] = [];
  hosts: string[] = [];
  preview: PlacementPreview | null = null;
  problem = "";  // the form's or the server's objection, with the field
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
    const [images, hosts] = await Promise.all([
      api.GET("/api/v1/images", { params: { query: { limit: 1000 } } }),
      listHosts(),
    ]);
    if (!images.data) throw new Error(errorText(images.error, "cannot list images"));
    this.images = (images.data.images ?? []) as Image[];
    this.hosts = hosts.map((h) => h.name ?? "").filter(Boolean);
  }

  private set(key: keyof WizardForm, value: string | boolean): void {
    this.form = { ...this.form, [key]: value };
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
      return;
    }
    this.asking = true;
    const r = await api.POST("/api/v1/placement", { body });
    if (n !== this.asked) return;
    this.asking = false;
    this.preview = r.data ?? null;
    this.problem = r.data ? "" : errorText(r.error, "the scheduler did not answer");
  }

  private async create(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const { body, error } = vmCreateBody(this.form);
    if (!body) {
      this.problem = error ? `${error.message} (field: ${error.field})` : "";
      return;
    }
    this.creating = true;
    const r = await api.POST("/api/v1/vms", { body });
    this.creating = false;
    if (!r.data) {
      this.problem = errorText(r.error, "create failed");
      void this.ask();
      return;
    }
    this.vm = r.data.vm ?? null;
    this.task = r.data.task ?? null;
    void this.refresh();
  }

  private field(key: keyof WizardForm, label: string, opts: { type?: string; hint?: string; placeholder?: string } = {}) {
    const id = `cw-${key}`;
    return html`<label for=${id}>${label}</label>
      <input id=${id} type=${opts.type ?? "text"} .value=${String(this.form[key])} placeholder=${opts.placeholder ?? ""}
        aria-describedby=${opts.hint ? `${id}-hint` : nothing} spellcheck="false"
        @input=${(e: InputEvent) => this.set(key, (e.target as HTMLInputElement).value)} />
      ${opts.hint ? html`<span id="${id}-hint" class="muted hint">${opts.hint}</span>` : html`<span></span>`}`;
  }

  private select(key: keyof WizardForm, label: string, options: string[], none: string) {
    const id = `cw-${key}`;
    return html`<label for=${id}>${label}</label>
      <select id=${id} @change=${(e: Event) => this.set(key, (e.target as HTMLSelectElement).value)}>
        <option value="" ?selected=${this.form[key] === ""}>${none}</option>
        ${options.map((o) => html`<option value=${o} ?selected=${this.form[key] === o}>${o}</option>`)}
      </select><span></span>`;
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
            ${this.select("image", "Disk image", byKind("disk"), "blank disk")}
            ${this.field("diskGib", "Disk size (GiB)", { hint: "blank disk size, or grow the image to it" })}
            ${this.select("kernel", "Kernel", byKind("kernel"), "none (boot from the disk)")}
            ${this.select("initrd", "Initrd", byKind("initrd"), "none")}
            ${this.field("cmdline", "Kernel command line")}
            ${this.field("labels", "Labels", { placeholder: "tier=web, team=a" })}
            ${this.field("nodeSelector", "Node selector", { placeholder: "zone=a", hint: "host labels the VM needs" })}
            ${this.select("host", "Host", this.hosts, "chosen by the scheduler")}
            <label for="cw-nic">User-mode NIC</label>
            <input id="cw-nic" type="checkbox" .checked=${this.form.nic} @change=${(e: Event) => this.set("nic", (e.target as HTMLInputElement).checked)} /><span></span>
            <label for="cw-vnc">Graphical console (VNC)</label>
            <input id="cw-vnc" type="checkbox" .checked=${this.form.vnc} @change=${(e: Event) => this.set("vnc", (e.target as HTMLInputElement).checked)} /><span></span>
            <label for="cw-start">Start after creating</label>
            <input id="cw-start" type="checkbox" .checked=${this.form.start} @change=${(e: Event) => this.set("start", (e.target as HTMLInputElement).checked)} /><span></span>
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
