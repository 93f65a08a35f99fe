// The backup schedules (on the backups page): GET /api/v1/backup-schedules listed with the
// next run; operators create one (a VM or a label selector, a UTC time, days, full-backup
// days, retention, sync after each run: POST, the API's 400/409 next to the field) and
// delete one behind a dialog.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, errorText, type Schemas, type StrataEvent } from "./api/client";
import { DAYS, KEEP_FIELDS, envelopeProblem, problemKey, retentionText, scheduleBody, type Day, type FieldProblem, type ScheduleForm, when } from "./backup-logic";
import { actionError, describedBy, fieldError } from "./backup-view";
import { canOperate } from "./format";
import { LivePage } from "./pages";

type Schedule = Schemas["BackupSchedule"];

const emptyForm = (): ScheduleForm => ({ name: "", by: "vm", vm: "", selector: "", time: "02:00", days: [], fullOn: [], keep: {}, sync: false });

class SchedulesSection extends LivePage {
  static override properties = {
    ...LivePage.properties,
    schedules: { state: true },
    form: { state: true },
    problem: { state: true },
    message: { state: true },
    deleting: { state: true },
  };
  schedules: Schedule[] = [];
  form: ScheduleForm = emptyForm();
  problem: FieldProblem | null = null;
  message = "";
  deleting = "";

  protected override wants(e: StrataEvent | undefined): boolean {
    return (e?.action ?? "").startsWith("backup.schedule.");
  }

  protected async load(): Promise<void> {
    const { data, error } = await api.GET("/api/v1/backup-schedules");
    if (!data) throw new Error(errorText(error, "cannot list backup schedules"));
    this.schedules = data.schedules;
  }

  private set<K extends keyof ScheduleForm>(k: K, v: ScheduleForm[K]): void {
    this.form = { ...this.form, [k]: v };
  }

  private toggle(k: "days" | "fullOn", d: Day, on: boolean): void {
    const list = this.form[k].filter((x) => x !== d);
    this.set(k, on ? [...list, d] : list);
  }

  private async create(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const body = scheduleBody(this.form);
    if (!body.ok) return void (this.problem = body.problem);
    const { data, error } = await api.POST("/api/v1/backup-schedules", { body: body.value });
    if (!data) return void (this.problem = envelopeProblem(error, "the schedule was refused"));
    this.problem = null;
    this.message = `created schedule ${data.name}: next run ${when(data.next_run_unix_ms)}`;
    this.form = emptyForm();
    void this.refresh();
  }

  private ask(name: string): void {
    this.deleting = name;
    void this.updateComplete.then(() => this.querySelector<HTMLDialogElement>("#schedule-delete-dialog")?.showModal());
  }

  private async closeDelete(yes: boolean): Promise<void> {
    this.querySelector<HTMLDialogElement>("#schedule-delete-dialog")?.close();
    const name = this.deleting;
    this.deleting = "";
    if (!yes || !name) return;
    const { data, error } = await api.DELETE("/api/v1/backup-schedules/{name}", { params: { path: { name } } });
    if (!data) return void (this.problem = envelopeProblem(error, `cannot delete ${name}`));
    this.problem = null;
    this.message = `deleted schedule ${name}`;
    void this.refresh();
  }

  private input(k: "name" | "vm" | "selector" | "time", label: string, placeholder = "") {
    const p = this.problem;
    return html`<label for="sch-${k}">${label}</label>
      <input id="sch-${k}" .value=${this.form[k]} placeholder=${placeholder} spellcheck="false"
        aria-invalid=${p && problemKey(p.field) === k ? "true" : "false"} aria-describedby=${describedBy(p, k, `sch-${k}`)}
        @input=${(e: InputEvent) => this.set(k, (e.target as HTMLInputElement).value)} />${fieldError(p, k, `sch-${k}`)}`;
  }

  private days(k: "days" | "fullOn", legend: string, field: string) {
    return html`<fieldset class="days"><legend>${legend}</legend>
      ${DAYS.map((d) => html`<label><input type="checkbox" .checked=${this.form[k].includes(d)}
        @change=${(e: Event) => this.toggle(k, d, (e.target as HTMLInputElement).checked)} />${d}</label>`)}
      ${fieldError(this.problem, field, `sch-${field}`)}</fieldset>`;
  }

  private renderForm() {
    const f = this.form;
    const p = this.problem;
    return html`<form class="toolbar" aria-labelledby="sch-new-h" @submit=${(e: SubmitEvent) => this.create(e)}>
      <h3 id="sch-new-h">New schedule</h3>
      ${this.input("name", "Schedule name")}
      <label for="sch-by">Back up</label>
      <select id="sch-by" @change=${(e: Event) => this.set("by", (e.target as HTMLSelectElement).value as "vm" | "selector")}>
        <option value="vm" ?selected=${f.by === "vm"}>one VM</option>
        <option value="selector" ?selected=${f.by === "selector"}>VMs with labels</option>
      </select>
      ${f.by === "vm" ? this.input("vm", "VM") : this.input("selector", "Labels", "tier=web")}
      ${this.input("time", "Time (UTC)", "HH:MM")}
      ${this.days("days", "Days (none: every day)", "days")}
      ${this.days("fullOn", "Full backup on", "full_on")}
      ${KEEP_FIELDS.map((k) => html`<label for="sch-${k}">Keep ${k.slice(5)}</label>
        <input id="sch-${k}" size="4" inputmode="numeric" .value=${f.keep[k] ?? ""}
          aria-invalid=${p && problemKey(p.field) === k ? "true" : "false"} aria-describedby=${describedBy(p, k, `sch-${k}`)}
          @input=${(e: InputEvent) => this.set("keep", { ...f.keep, [k]: (e.target as HTMLInputElement).value })} />${fieldError(p, k, `sch-${k}`)}`)}
      <label><input type="checkbox" .checked=${f.sync} @change=${(e: Event) => this.set("sync", (e.target as HTMLInputElement).checked)} /> sync after each run</label>
      <button type="submit">Create schedule</button>
    </form>
    ${actionError(p, ["name", "vm", "selector", "time", "days", "full_on", ...KEEP_FIELDS])}`;
  }

  override render() {
    const operate = canOperate(this.role);
    return html`<section aria-labelledby="sch-h">
      <h2 id="sch-h">Schedules</h2>
      ${this.renderError()}
      ${this.message ? html`<p class="notice" role="status">${this.message}</p>` : nothing}
      ${this.schedules.length === 0 ? html`<p class="muted">No backup schedules.</p>` : html`
      <table class="grid" aria-label="Backup schedules" tabindex="0">
        <thead><tr><th scope="col">Name</th><th scope="col">Backs up</th><th scope="col">Time (UTC)</th><th scope="col">Days</th>
          <th scope="col">Full on</th><th scope="col">Retention</th><th scope="col">Sync</th><th scope="col">Next run</th>
          ${operate ? html`<th scope="col">Actions</th>` : nothing}</tr></thead>
        <tbody>${repeat(this.schedules, (s) => s.name, (s) => html`<tr data-schedule=${s.name}>
          <th scope="row">${s.name}</th>
          <td>${s.vm ? html`<a href="/vms/${s.vm}">${s.vm}</a>` : Object.entries(s.selector ?? {}).map(([k, v]) => html`<span class="label">${k}=${v}</span>`)}</td>
          <td>${s.time}</td><td>${s.days.length === 7 || s.days.length === 0 ? "every day" : s.days.join(", ")}</td>
          <td>${s.full_on.length ? s.full_on.join(", ") : "-"}</td><td>${retentionText(s.retention)}</td><td>${s.sync ? "yes" : "no"}</td>
          <td>${when(s.next_run_unix_ms)}</td>
          ${operate ? html`<td><button type="button" class="danger" aria-label="Delete schedule ${s.name}" @click=${() => this.ask(s.name)}>Delete…</button></td>` : nothing}
        </tr>`)}</tbody>
      </table>`}
      ${operate ? this.renderForm() : nothing}
      ${operate ? html`<dialog id="schedule-delete-dialog" aria-labelledby="sch-del-h">
        <h2 id="sch-del-h">Delete schedule ${this.deleting}?</h2>
        <p>No more runs; the backups it made stay.</p>
        <div class="toolbar">
          <button type="button" class="danger" @click=${() => this.closeDelete(true)}>Delete ${this.deleting}</button>
          <button type="button" class="secondary" @click=${() => this.closeDelete(false)}>Cancel</button>
        </div>
      </dialog>` : nothing}
    </section>`;
  }
}
customElements.define("strata-backup-schedules", SchedulesSection);
