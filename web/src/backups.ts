// The backups page (/backups, issue 12): the repository's backups newest first (GET
// /api/v1/backups, filtered by VM with ?vm= in the URL), and for operators verify (the
// result: chunks checked, problems), restore (into a new VM, or over the disks of a
// stopped VM) and delete behind a dialog; prune with the retention counts, previewed with
// the API's dry run before anything is deleted; sync to the manager's sync target; the
// schedules (backup-schedules.ts). The VM page's Backups section is <strata-vm-backups>.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, errorText, type Schemas, type StrataEvent } from "./api/client";
import {
  KEEP_FIELDS,
  backupRows,
  backupVms,
  envelopeProblem,
  problemKey,
  pruneBody,
  restoreBody,
  type Backup,
  type BackupPrune,
  type FieldProblem,
  type KeepField,
  when,
} from "./backup-logic";
import { TaskWatch, renderStarted } from "./backup-tasks";
import { actionError, describedBy, fieldError } from "./backup-view";
import { bytes, canOperate } from "./format";
import { LivePage } from "./pages";
import "./backup-schedules";

type PruneResult = Schemas["BackupPruneResult"];

export function backupKind(b: Backup) {
  return html`${b.kind}${b.parent ? html` <span class="muted" title="extends ${b.parent}">(extends …${b.parent.slice(-20)})</span>` : nothing}`;
}

class BackupsPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    backups: { state: true },
    vm: { state: true },
    vmNames: { state: true },
    datastores: { state: true },
    message: { state: true },
    problem: { state: true },
    pending: { state: true },
    restoreMode: { state: true },
    restoreProblem: { state: true },
    prune: { state: true },
    pruneProblem: { state: true },
    preview: { state: true },
    syncProblem: { state: true },
    started: { state: true },
  };
  backups: Backup[] = [];
  vm = new URLSearchParams(location.search).get("vm") ?? "";
  vmNames: string[] = [];  // restore over a stopped VM: the choices
  datastores: string[] = [];  // restore into a new VM: where its disks may go (GET /api/v1/summary)
  message = "";
  problem: FieldProblem | null = null;  // a row action's (verify, delete)
  pending: { action: "restore" | "delete"; backup: Backup } | null = null;
  restoreMode: "new" | "replace" = "new";
  restoreProblem: FieldProblem | null = null;
  prune: { by: "vm" | "selector"; vm: string; selector: string; keep: Partial<Record<KeepField, string>> } =
    { by: "vm", vm: this.vm, selector: "", keep: { keep_last: "3" } };
  pruneProblem: FieldProblem | null = null;
  preview: { body: BackupPrune; result: PruneResult } | null = null;
  syncProblem: FieldProblem | null = null;
  started: TaskWatch["list"] = [];
  private watch = new TaskWatch((ended) => {
    this.started = this.watch.list;
    if (ended.some((s) => s.task.kind !== "backup.verify")) void this.refresh();
  });

  protected override wants(e: StrataEvent | undefined): boolean {
    return /^backup\./.test(e?.action ?? "") || (e?.target ?? "").startsWith("backup/");
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.watch.stop();
  }

  protected async load(): Promise<void> {
    const [list, vms, summary] = await Promise.all([
      api.GET("/api/v1/backups"),
      canOperate(this.role) ? api.GET("/api/v1/vms", { params: { query: { limit: 1000, sort: "name" } } }) : null,
      canOperate(this.role) ? api.GET("/api/v1/summary") : null,
    ]);
    if (!list.data) throw new Error(errorText(list.error, "cannot list backups"));
    this.backups = list.data.backups;
    if (vms?.data) this.vmNames = (vms.data.vms ?? []).map((v) => v.name ?? "").filter(Boolean);
    if (summary?.data) this.datastores = (summary.data.datastores.items ?? []).map((d) => d.name).sort();
  }

  private filter(vm: string): void {
    this.vm = vm;
    const q = vm ? `?${new URLSearchParams({ vm }).toString()}` : "";
    history.replaceState(null, "", `/backups${q}`);
    if (vm && this.prune.by === "vm") this.prune = { ...this.prune, vm };
  }

  private async verify(b: Backup): Promise<void> {
    const { data, error } = await api.POST("/api/v1/backups/{id}/verify", { params: { path: { id: b.id } } });
    if (!data) {
      this.problem = envelopeProblem(error, `cannot verify ${b.id}`);
      return;
    }
    this.problem = null;
    this.message = `verify ${b.id}: started`;
    this.watch.add({ task: data.task, what: `verify ${b.id}`, backup: b.id });
  }

  private ask(action: "restore" | "delete", backup: Backup): void {
    this.pending = { action, backup };
    this.restoreProblem = null;
    void this.updateComplete.then(() => this.querySelector<HTMLDialogElement>("#backup-dialog")?.showModal());
  }

  private close(): void {
    this.querySelector<HTMLDialogElement>("#backup-dialog")?.close();
    this.pending = null;
  }

  private async doDelete(b: Backup): Promise<void> {
    const { data, error } = await api.DELETE("/api/v1/backups/{id}", { params: { path: { id: b.id } } });
    this.close();
    if (!data) {
      this.problem = envelopeProblem(error, `cannot delete ${b.id}`);
      return;
    }
    this.problem = null;
    this.message = `deleted ${b.id}: ${data.chunks_removed} chunks (${bytes(data.bytes_removed)}) freed`;
    void this.refresh();
  }

  private async doRestore(ev: SubmitEvent, b: Backup): Promise<void> {
    ev.preventDefault();
    const form = new FormData(ev.target as HTMLFormElement);
    const name = String(form.get("target") ?? "");
    const disks = form.get("disks");  // "keep": where the backup had them
    const body = restoreBody(this.restoreMode, name, disks === null || disks === "keep" ? null : String(disks));
    if (!body.ok) return void (this.restoreProblem = body.problem);
    const { data, error } = await api.POST("/api/v1/backups/{id}/restore", { params: { path: { id: b.id } }, body: body.value });
    if (!data) return void (this.restoreProblem = envelopeProblem(error, "the restore was refused"));
    this.close();
    const into = body.value.new_vm ? `a new VM ${body.value.new_vm}` : `the disks of ${body.value.vm}`;
    this.message = `restore ${b.id} into ${into}: started`;
    this.watch.add({ task: data.task, what: `restore ${b.id} → ${data.vm}`, backup: b.id });
  }

  private pruneField(k: string, v: string): void {
    this.preview = null;
    this.prune = k.startsWith("keep_")
      ? { ...this.prune, keep: { ...this.prune.keep, [k]: v } }
      : { ...this.prune, [k]: v };
  }

  // Preview first (dry_run: what is kept, by which rule, and what would go), then the same
  // body without dry_run once the person has seen it.
  private async runPrune(dryRun: boolean): Promise<void> {
    const body = dryRun ? pruneBody(this.prune, this.prune.keep, true) : this.preview ? { ok: true as const, value: { ...this.preview.body, dry_run: false } } : null;
    if (!body) return;
    if (!body.ok) return void (this.pruneProblem = body.problem);
    const { data, error } = await api.POST("/api/v1/backups/prune", { body: body.value });
    if (!data) return void (this.pruneProblem = envelopeProblem(error, "prune failed"));
    this.pruneProblem = null;
    if (dryRun) {
      this.preview = { body: body.value, result: data };
      return;
    }
    this.preview = null;
    this.message = `pruned ${data.prune.length} backup${data.prune.length === 1 ? "" : "s"}, kept ${data.keep.length}; ${data.chunks_removed} chunks (${bytes(data.bytes_removed)}) freed`;
    void this.refresh();
  }

  private async sync(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const form = new FormData(ev.target as HTMLFormElement);
    const verify = form.get("verify") === "on";
    const removeVanished = form.get("remove_vanished") === "on";
    const { data, error } = await api.POST("/api/v1/backups/sync", { body: { verify, remove_vanished: removeVanished } });
    if (!data) return void (this.syncProblem = envelopeProblem(error, "the sync was refused"));
    this.syncProblem = null;
    this.message = "sync: started";
    this.watch.add({ task: data.task, what: `sync${verify ? " (verify)" : ""}`, backup: "" });
  }

  private renderRow(b: Backup, operate: boolean) {
    const v = this.watch.verifyOf(b.id);
    return html`<tr data-backup=${b.id} data-vm=${b.vm}>
      <td><a href="/vms/${b.vm}">${b.vm}</a></td><td>${backupKind(b)}</td><td>${when(b.created_unix_ms)}</td>
      <td>${bytes(b.size_bytes)}</td><td>${bytes(b.bytes_new)}</td>
      <td>${b.frozen ? "frozen (consistent)" : "crash-consistent"}</td>
      <th scope="row"><code>${b.id}</code>${v ? html`<br /><span class=${v.ok ? "notice" : "error-text"} data-verify=${v.ok ? "ok" : "bad"}>${v.text}</span>` : nothing}</th>
      ${operate ? html`<td><div class="toolbar">
        <button type="button" class="secondary" aria-label="Verify backup ${b.id}" @click=${() => this.verify(b)}>Verify</button>
        <button type="button" class="secondary" aria-label="Restore backup ${b.id}" @click=${() => this.ask("restore", b)}>Restore…</button>
        <button type="button" class="danger" aria-label="Delete backup ${b.id}" @click=${() => this.ask("delete", b)}>Delete…</button>
      </div></td>` : nothing}
    </tr>`;
  }

  private renderDialog() {
    const p = this.pending;
    if (!p) return html`<dialog id="backup-dialog" aria-label="Backup action"></dialog>`;
    const b = p.backup;
    if (p.action === "delete")
      return html`<dialog id="backup-dialog" aria-labelledby="bk-dlg-h" @close=${() => { this.pending = null; }}>
        <h2 id="bk-dlg-h">Delete backup ${b.id}?</h2>
        <p>The backup of ${b.vm} from ${when(b.created_unix_ms)} is removed, and the chunks no other backup uses are freed. This cannot be undone.</p>
        <div class="toolbar">
          <button type="button" class="danger" @click=${() => this.doDelete(b)}>Delete ${b.id}</button>
          <button type="button" class="secondary" @click=${() => this.close()}>Cancel</button>
        </div>
      </dialog>`;
    const rp = this.restoreProblem;
    const replace = this.restoreMode === "replace";
    return html`<dialog id="backup-dialog" aria-labelledby="bk-dlg-h" @close=${() => { this.pending = null; }}>
      <h2 id="bk-dlg-h">Restore backup ${b.id}</h2>
      <form @submit=${(e: SubmitEvent) => this.doRestore(e, b)} aria-labelledby="bk-dlg-h">
        <fieldset><legend>Restore into</legend>
          <label><input type="radio" name="mode" value="new" ?checked=${!replace} @change=${() => { this.restoreMode = "new"; this.restoreProblem = null; }} />
            a new VM (the backed-up VM's spec, new UUID and MACs, created stopped)</label><br />
          <label><input type="radio" name="mode" value="replace" ?checked=${replace} @change=${() => { this.restoreMode = "replace"; this.restoreProblem = null; }} />
            a stopped VM: its disks are replaced by the backup's</label>
        </fieldset>
        ${replace
          ? html`<label for="bk-restore-target">Stopped VM</label>
              <select id="bk-restore-target" name="target" aria-invalid=${rp?.field === "vm" ? "true" : "false"} aria-describedby=${describedBy(rp, replace ? "vm" : "new_vm", "bk-restore-target")}>
                ${this.vmNames.map((n) => html`<option value=${n} ?selected=${n === b.vm}>${n}</option>`)}
              </select>${fieldError(rp, "vm", "bk-restore-target")}`
          : html`<label for="bk-restore-target">New VM name</label>
              <input id="bk-restore-target" name="target" spellcheck="false" .value=${`${b.vm}-restored`}
                aria-invalid=${rp?.field === "new_vm" ? "true" : "false"} aria-describedby=${describedBy(rp, replace ? "vm" : "new_vm", "bk-restore-target")} />
              ${fieldError(rp, "new_vm", "bk-restore-target")}
              <label for="bk-restore-disks">Disks on</label>
              <select id="bk-restore-disks" name="disks" aria-invalid=${rp?.field === "datastore" ? "true" : "false"} aria-describedby=${describedBy(rp, "datastore", "bk-restore-disks")}>
                <option value="keep" selected>where the backed-up VM had them</option>
                <option value="">the host's own store</option>
                ${this.datastores.map((n) => html`<option value=${n}>datastore ${n}</option>`)}
              </select>${fieldError(rp, "datastore", "bk-restore-disks")}`}
        ${actionError(rp, ["vm", "new_vm", "datastore"])}
        <div class="toolbar">
          <button type="submit" class=${replace ? "danger" : ""}>${replace ? "Replace the disks" : "Restore"}</button>
          <button type="button" class="secondary" @click=${() => this.close()}>Cancel</button>
        </div>
      </form>
    </dialog>`;
  }

  private renderPrune() {
    const pp = this.pruneProblem;
    const f = this.prune;
    const pv = this.preview;
    const input = (k: string, label: string, value: string) => html`<label for="prune-${k}">${label}</label>
      <input id="prune-${k}" .value=${value} spellcheck="false" inputmode=${k.startsWith("keep_") ? "numeric" : "text"} size=${k.startsWith("keep_") ? 4 : 16}
        aria-invalid=${pp && problemKey(pp.field) === k ? "true" : "false"} aria-describedby=${describedBy(pp, k, `prune-${k}`)}
        @input=${(e: InputEvent) => this.pruneField(k, (e.target as HTMLInputElement).value)} />${fieldError(pp, k, `prune-${k}`)}`;
    return html`<section aria-labelledby="prune-h">
      <h2 id="prune-h">Prune</h2>
      <form class="toolbar" aria-labelledby="prune-h" @submit=${(e: SubmitEvent) => { e.preventDefault(); void this.runPrune(true); }}>
        <label for="prune-by">Backups of</label>
        <select id="prune-by" @change=${(e: Event) => this.pruneField("by", (e.target as HTMLSelectElement).value)}>
          <option value="vm" ?selected=${f.by === "vm"}>one VM</option>
          <option value="selector" ?selected=${f.by === "selector"}>VMs with labels</option>
        </select>
        ${f.by === "vm" ? input("vm", "VM", f.vm) : input("selector", "Labels", f.selector)}
        ${KEEP_FIELDS.map((k) => input(k, `Keep ${k.slice(5)}`, f.keep[k] ?? ""))}
        <button type="submit" class="secondary">Preview</button>
      </form>
      ${actionError(pp, ["vm", "selector", ...KEEP_FIELDS])}
      ${pv ? html`<div data-prune-preview>
        <p role="status">Would keep ${pv.result.keep.length} and delete ${pv.result.prune.length} backup${pv.result.prune.length === 1 ? "" : "s"} of ${pv.result.vms.join(", ") || "no VM"}.</p>
        <table class="grid" aria-label="Prune preview" tabindex="0">
          <thead><tr><th scope="col">Backup</th><th scope="col">VM</th><th scope="col">Created</th><th scope="col">Outcome</th></tr></thead>
          <tbody>
            ${pv.result.keep.map((k) => html`<tr data-outcome="keep"><th scope="row"><code>${k.id}</code></th><td>${k.vm}</td><td>${when(k.created_unix_ms)}</td>
              <td>keep (${k.rule}${k.period ? ` ${k.period}` : ""})</td></tr>`)}
            ${pv.result.prune.map((k) => html`<tr data-outcome="prune"><th scope="row"><code>${k.id}</code></th><td>${k.vm}</td><td>${when(k.created_unix_ms)}</td>
              <td class="error-text">delete</td></tr>`)}
          </tbody>
        </table>
        <div class="toolbar">
          <button type="button" class="danger" ?disabled=${pv.result.prune.length === 0} @click=${() => this.runPrune(false)}>Delete ${pv.result.prune.length} backup${pv.result.prune.length === 1 ? "" : "s"}</button>
          <button type="button" class="secondary" @click=${() => { this.preview = null; }}>Cancel</button>
        </div>
      </div>` : nothing}
    </section>`;
  }

  override render() {
    const operate = canOperate(this.role);
    const rows = backupRows(this.backups, this.vm);
    const vms = backupVms(this.backups);
    if (this.vm && !vms.includes(this.vm)) vms.push(this.vm);
    return html`<h1>Backups</h1>${this.renderError()}
      ${this.message ? html`<p class="notice" role="status">${this.message}</p>` : nothing}
      ${actionError(this.problem, [])}
      <div class="toolbar">
        <label for="bk-vm">VM</label>
        <select id="bk-vm" @change=${(e: Event) => this.filter((e.target as HTMLSelectElement).value)}>
          <option value="" ?selected=${!this.vm}>all VMs</option>
          ${vms.map((n) => html`<option value=${n} ?selected=${n === this.vm}>${n}</option>`)}
        </select>
        <span class="muted">${rows.length} of ${this.backups.length} backups</span>
      </div>
      ${!this.loaded ? html`<p role="status">Loading…</p>` : html`
      <table class="grid" aria-label="Backups" tabindex="0">
        <thead><tr><th scope="col">VM</th><th scope="col">Kind</th><th scope="col">Created</th><th scope="col">Size</th>
          <th scope="col">New bytes</th><th scope="col">Consistency</th><th scope="col">Id</th>${operate ? html`<th scope="col">Actions</th>` : nothing}</tr></thead>
        <tbody>${repeat(rows, (b) => b.id, (b) => this.renderRow(b, operate))}</tbody>
      </table>
      ${rows.length === 0 ? html`<p class="muted">No backups${this.vm ? ` of ${this.vm}` : ""}.</p>` : nothing}`}
      ${renderStarted(this.started)}
      ${operate ? this.renderPrune() : nothing}
      ${operate ? html`<section aria-labelledby="sync-h">
        <h2 id="sync-h">Sync</h2>
        <form class="toolbar" aria-labelledby="sync-h" @submit=${(e: SubmitEvent) => this.sync(e)}>
          <span class="muted">Copy the backups the manager's sync target lacks into it (stratad --backup-sync-repo).</span>
          <label><input type="checkbox" name="verify" /> verify the copy</label>
          <label><input type="checkbox" name="remove_vanished" /> remove from the target what the repository no longer has</label>
          <button type="submit" class="secondary">Sync now</button>
        </form>
        ${actionError(this.syncProblem, [])}
      </section>` : nothing}
      <strata-backup-schedules .role=${this.role} .events=${this.events}></strata-backup-schedules>
      ${operate ? this.renderDialog() : nothing}`;
  }
}
customElements.define("strata-backups", BackupsPage);

// The VM page's Backups section: back up now (incremental when the API can, or full), that
// VM's backups newest first, the tasks started here. Verify, restore and delete are on the
// backups page (a link with the VM's filter).
class VmBackups extends LivePage {
  static override properties = {
    ...LivePage.properties,
    name: { attribute: false },
    backups: { state: true },
    problem: { state: true },
    started: { state: true },
    busy: { state: true },
    unavailable: { state: true },
  };
  name = "";
  unavailable = "";
  backups: Backup[] = [];
  problem: FieldProblem | null = null;
  started: TaskWatch["list"] = [];
  busy = false;
  private watch = new TaskWatch((ended) => {
    this.started = this.watch.list;
    if (ended.length) void this.refresh();
  });

  protected override wants(e: StrataEvent | undefined): boolean {
    return /^backup\./.test(e?.action ?? "");
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.watch.stop();
  }

  protected async load(): Promise<void> {
    const { data, error, response } = await api.GET("/api/v1/backups", { params: { query: { vm: this.name } } });
    // No repository configured (409/503): a quiet line, not an alert on every VM page.
    this.unavailable = !data && (response.status === 409 || response.status === 503) ? errorText(error) : "";
    if (this.unavailable) return;
    if (!data) throw new Error(errorText(error, "cannot list backups"));
    this.backups = backupRows(data.backups);
  }

  private async backUp(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const full = new FormData(ev.target as HTMLFormElement).get("full") === "on";
    this.busy = true;
    const { data, error } = await api.POST("/api/v1/vms/{name}/backups", { params: { path: { name: this.name } }, body: { full } });
    this.busy = false;
    if (!data) return void (this.problem = envelopeProblem(error, "the backup was refused"));
    this.problem = null;
    this.watch.add({ task: data.task, what: `back up ${this.name}${full ? " (full)" : ""} → ${data.backup}`, backup: data.backup });
  }

  override render() {
    const operate = canOperate(this.role);
    return html`<section aria-labelledby="vm-backups-h" data-backups=${this.backups.length}>
      <h2 id="vm-backups-h">Backups</h2>
      ${this.renderError()}
      ${this.unavailable ? html`<p class="muted" role="status">No backups here: ${this.unavailable}</p>` : this.renderBody(operate)}
    </section>`;
  }

  private renderBody(operate: boolean) {
    return html`
      ${operate ? html`<form class="toolbar" aria-label="Back up this VM" @submit=${(e: SubmitEvent) => this.backUp(e)}>
        <label><input type="checkbox" name="full" /> full (else incremental when possible)</label>
        <button type="submit" ?disabled=${this.busy}>Back up now</button>
      </form>${actionError(this.problem, [])}` : nothing}
      ${this.backups.length === 0 ? html`<p class="muted">No backups of this VM.</p>` : html`
      <table class="grid" aria-label="Backups of this VM" tabindex="0">
        <thead><tr><th scope="col">Created</th><th scope="col">Kind</th><th scope="col">Size</th><th scope="col">New bytes</th><th scope="col">Consistency</th><th scope="col">Id</th></tr></thead>
        <tbody>${repeat(this.backups, (b) => b.id, (b) => html`<tr data-backup=${b.id}><td>${when(b.created_unix_ms)}</td><td>${backupKind(b)}</td>
          <td>${bytes(b.size_bytes)}</td><td>${bytes(b.bytes_new)}</td><td>${b.frozen ? "frozen" : "crash-consistent"}</td>
          <th scope="row"><code>${b.id}</code></th></tr>`)}</tbody>
      </table>`}
      <p><a href="/backups?vm=${encodeURIComponent(this.name)}">All backups of ${this.name}${operate ? ": verify, restore, delete, prune" : ""}</a></p>
      ${renderStarted(this.started)}`;
  }
}
customElements.define("strata-vm-backups", VmBackups);
