// The tasks a page started (backup.create, .verify, .restore, .sync; the VM page's disk and
// NIC changes, vm-devices.ts), followed until they end. Task progress is not on the event stream (a task's updates publish no event),
// so the page reads each of its own running tasks again every second and stops when they
// have all ended: bounded to what this page started, never a list.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, type Task } from "./api/client";
import { verifyOutcome } from "./backup-logic";
import { time } from "./format";
import { stateBadge } from "./pages";

export interface Started {
  task: Task;
  what: string;  // "verify 20261202-…", "back up web-1", "attach disk data"
  backup: string;  // "" for a task of no backup
}

export class TaskWatch {
  list: Started[] = [];
  private timer: number | undefined;
  constructor(private readonly changed: (ended: Started[]) => void) {}

  add(s: Started): void {
    this.list = [s, ...this.list.filter((x) => x.task.id !== s.task.id)].slice(0, 20);
    this.changed([]);
    this.schedule();
  }

  stop(): void {
    window.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private running(): Started[] {
    return this.list.filter((s) => s.task.state === "pending" || s.task.state === "running");
  }

  private schedule(): void {
    if (this.timer !== undefined || this.running().length === 0) return;
    this.timer = window.setTimeout(() => {
      this.timer = undefined;
      void this.poll();
    }, 1000);
  }

  private async poll(): Promise<void> {
    const ended: Started[] = [];
    await Promise.all(this.running().map(async (s) => {
      const { data } = await api.GET("/api/v1/tasks/{id}", { params: { path: { id: s.task.id ?? "" } } });
      if (!data) return;
      s.task = data;
      if (data.state === "succeeded" || data.state === "failed") ended.push(s);
    }));
    this.list = [...this.list];
    this.changed(ended);
    this.schedule();
  }

  // The verify outcome of a backup's newest verify started here, if it ended.
  verifyOf(backup: string): { ok: boolean; text: string } | null {
    const s = this.list.find((x) => x.backup === backup && x.task.kind === "backup.verify");
    return s ? verifyOutcome(s.task) : null;
  }
}

// The table of what a page started; `id` and `label` tell two such tables on one page apart.
export function renderStarted(list: Started[], id = "bk-tasks-h", label = "Backup tasks started here") {
  if (list.length === 0) return nothing;
  return html`<section aria-labelledby=${id}>
    <h2 id=${id}>Started here</h2>
    <table class="grid" aria-label=${label} tabindex="0">
      <thead><tr><th scope="col">Task</th><th scope="col">State</th><th scope="col">Message</th><th scope="col">Updated</th></tr></thead>
      <tbody>${repeat(list, (s) => s.task.id ?? "", (s) => {
        const v = s.task.kind === "backup.verify" ? verifyOutcome(s.task) : null;
        return html`<tr data-task=${s.task.id ?? ""} data-kind=${s.task.kind ?? ""} data-state=${s.task.state ?? ""}>
          <td>${s.what}</td>
          <td>${stateBadge(s.task.state)}${s.task.state === "running" || s.task.state === "pending"
            ? html` <progress max="100" .value=${s.task.progress ?? 0} aria-label="progress of ${s.what}"></progress>` : nothing}</td>
          <td class=${v && !v.ok ? "error-text" : ""}>${v ? v.text : s.task.message ?? ""}</td><td>${time(s.task.updated_ms)}</td></tr>`;
      })}</tbody>
    </table>
  </section>`;
}
