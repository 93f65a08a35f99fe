// The backup pages' own logic (unit-tested in test/unit/backups.test.mjs): the retention
// fields read from a form, the bodies of prune, restore and schedule requests, what a
// finished verify task says, and the API's error envelope as a field and a message.
import type { components } from "./api/schema";

type S = components["schemas"];
export type Backup = S["Backup"];
export type BackupRetention = S["BackupRetention"];
export type BackupPrune = S["BackupPrune"];
export type BackupScheduleCreate = S["BackupScheduleCreate"];
export type BackupRestore = S["BackupRestore"];
export type Day = NonNullable<BackupScheduleCreate["days"]>[number];

export const KEEP_FIELDS = ["keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"] as const;
export type KeepField = (typeof KEEP_FIELDS)[number];
export const DAYS: Day[] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MAX_KEEP = 100000;  // the API's maximum (BackupRetention)
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// An objection to one field, named as the API names it ("keep_daily", "selector", "time").
export interface FieldProblem {
  field: string;
  message: string;
}
export type Checked<T> = { ok: true; value: T } | { ok: false; problem: FieldProblem };
const bad = <T>(field: string, message: string): Checked<T> => ({ ok: false, problem: { field, message } });

// The keep_* inputs ("" = not set) -> the retention the API takes. At least one count
// positive: the API refuses a policy that keeps nothing (400 keep_last), said here first.
export function retentionFrom(fields: Partial<Record<KeepField, string>>): Checked<BackupRetention> {
  const r: BackupRetention = {};
  for (const k of KEEP_FIELDS) {
    const text = (fields[k] ?? "").trim();
    if (!text) continue;
    if (!/^\d+$/.test(text)) return bad(k, "a whole number, 0 or more");
    const n = Number(text);
    if (n > MAX_KEEP) return bad(k, `at most ${MAX_KEEP}`);
    if (n > 0) r[k] = n;
  }
  if (Object.keys(r).length === 0) return bad("keep_last", "keep at least one backup: set one of the counts above 0");
  return { ok: true, value: r };
}

// "tier=web, team=a" -> {tier: "web", team: "a"}; at least one pair.
export function selectorFrom(text: string, field = "selector"): Checked<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const part of text.split(/[,\s]+/).map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq <= 0) return bad(field, `"${part}" is not key=value`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  if (Object.keys(out).length === 0) return bad(field, "at least one label, key=value");
  return { ok: true, value: out };
}

// Whose backups: one VM by name, or the VMs whose labels match.
export interface TargetForm {
  by: "vm" | "selector";
  vm: string;
  selector: string;
}
function target(t: TargetForm): Checked<{ vm: string } | { selector: Record<string, string> }> {
  if (t.by === "vm") {
    const vm = t.vm.trim();
    if (!vm) return bad("vm", "choose a VM");
    return { ok: true, value: { vm } };
  }
  const sel = selectorFrom(t.selector);
  return sel.ok ? { ok: true, value: { selector: sel.value } } : sel;
}

export function pruneBody(t: TargetForm, keep: Partial<Record<KeepField, string>>, dryRun: boolean): Checked<BackupPrune> {
  const who = target(t);
  if (!who.ok) return who;
  const r = retentionFrom(keep);
  if (!r.ok) return r;
  return { ok: true, value: { ...who.value, ...r.value, dry_run: dryRun } };
}

// Restore into a new VM (new_vm) or over the disks of a stopped VM (vm): exactly one. A new
// VM's disks may go onto a datastore (`datastore`: its name, "" the host's own store; null:
// where the backup's spec had them); a restore over a VM writes them where they are.
export function restoreBody(mode: "new" | "replace", name: string, datastore: string | null = null): Checked<BackupRestore> {
  const n = name.trim();
  const field = mode === "new" ? "new_vm" : "vm";
  if (!n) return bad(field, mode === "new" ? "enter the new VM's name" : "choose the stopped VM");
  if (mode === "new" && (n.length > 63 || !NAME.test(n))) return bad(field, "lower-case letters, digits and '-', at most 63");
  if (mode === "replace") return { ok: true, value: { vm: n } };
  return { ok: true, value: datastore === null ? { new_vm: n } : { new_vm: n, datastore } };
}

export interface ScheduleForm extends TargetForm {
  name: string;
  time: string;
  days: Day[];  // none: every day (the API's default)
  fullOn: Day[];
  keep: Partial<Record<KeepField, string>>;  // all empty: no retention
  sync: boolean;
}

export function scheduleBody(f: ScheduleForm): Checked<BackupScheduleCreate> {
  const name = f.name.trim();
  if (!name || name.length > 63 || !NAME.test(name)) return bad("name", "lower-case letters, digits and '-', at most 63");
  const who = target(f);
  if (!who.ok) return who;
  if (!/^([01][0-9]|2[0-3]):[0-5][0-9]$/.test(f.time.trim())) return bad("time", "HH:MM, UTC (00:00 to 23:59)");
  const body: BackupScheduleCreate = { name, ...who.value, time: f.time.trim() };
  if (f.days.length) body.days = DAYS.filter((d) => f.days.includes(d));
  if (f.fullOn.length) {
    const outside = f.fullOn.filter((d) => f.days.length && !f.days.includes(d));
    if (outside.length) return bad("full_on", `full backups only on days it runs (${outside.join(", ")} is not one)`);
    body.full_on = DAYS.filter((d) => f.fullOn.includes(d));
  }
  if (KEEP_FIELDS.some((k) => (f.keep[k] ?? "").trim())) {
    const r = retentionFrom(f.keep);
    if (!r.ok) return { ok: false, problem: { field: `retention.${r.problem.field}`, message: r.problem.message } };
    body.retention = r.value;
  }
  if (f.sync) body.sync = true;
  return { ok: true, value: body };
}

// A retention in one line: "last 3, daily 7".
export function retentionText(r: BackupRetention | null | undefined): string {
  if (!r) return "none";
  const parts = KEEP_FIELDS.filter((k) => (r[k] ?? 0) > 0).map((k) => `${k.slice(5)} ${r[k]}`);
  return parts.length ? parts.join(", ") : "none";
}

// Newest first; only one VM's when vm is set.
export function backupRows(list: Backup[], vm = ""): Backup[] {
  return list.filter((b) => !vm || b.vm === vm).sort((a, b) => b.created_unix_ms - a.created_unix_ms);
}

// The VMs that have backups, for the filter.
export function backupVms(list: Backup[]): string[] {
  return [...new Set(list.map((b) => b.vm))].sort();
}

// A backup.verify task's result, for people: "intact: 120 chunks checked (480 KiB)" or the
// problems. null while the task has not ended.
export interface VerifyResultLike {
  chunks_checked?: number;
  bytes_checked?: number;
  problems?: string[];
  ok?: boolean;
}
export interface TaskLike {
  state?: string;
  message?: string;
  result?: Record<string, unknown>;
}
export function verifyOutcome(t: TaskLike): { ok: boolean; text: string } | null {
  if (t.state !== "succeeded" && t.state !== "failed") return null;
  const r = (t.result ?? {}) as VerifyResultLike;
  const problems = Array.isArray(r.problems) ? r.problems : [];
  if (typeof r.chunks_checked !== "number")
    return { ok: t.state === "succeeded", text: t.message || t.state };  // failed before checking
  const checked = `${r.chunks_checked} chunk${r.chunks_checked === 1 ? "" : "s"} checked`;
  if (problems.length === 0 && t.state === "succeeded") return { ok: true, text: `intact: ${checked}, no problem` };
  return { ok: false, text: `${problems.length} problem${problems.length === 1 ? "" : "s"} (${checked}): ${problems.join("; ")}` };
}

// The error envelope as a field and a message ("" field: the action's, not a field's).
export function envelopeProblem(error: unknown, fallback: string): FieldProblem {
  const e = (error as { error?: { field?: unknown; message?: unknown } } | undefined)?.error;
  const message = e && typeof e.message === "string" ? e.message : fallback;
  return { field: e && typeof e.field === "string" ? e.field : "", message };
}

// Which of a form's controls shows a field's problem: the API's "selector.tier" is the
// selector box, "retention.keep_daily" (schedules) the keep_daily box, "days[2]" the days.
export function problemKey(field: string): string {
  if (field.startsWith("selector")) return "selector";
  if (field.startsWith("retention.")) return field.slice("retention.".length);
  return field.replace(/\[\d+\]$/, "");  // "days[2]": the days boxes
}

// Backups and schedules span days: the date and the time (the console's other tables show
// today's events, with the time only).
export function when(ms: number | undefined | null): string {
  return ms ? new Date(ms).toLocaleString() : "-";
}
