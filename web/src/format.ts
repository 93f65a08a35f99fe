// Small pure helpers the pages share (unit-tested in test/unit).
import type { Host, StrataEvent, Vm } from "./api/client";

export type Role = "viewer" | "operator" | "admin";

export function canOperate(role: Role | ""): boolean {
  return role === "operator" || role === "admin";
}

export function vmState(vm: Vm): string {
  return vm.status?.state ?? "unknown";
}

// VMs counted by observed state, largest first.
export function countByState(vms: Vm[]): Array<[string, number]> {
  const counts = new Map<string, number>();
  for (const vm of vms) counts.set(vmState(vm), (counts.get(vmState(vm)) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

// Server-side counts ({state: n}, GET /api/v1/summary) the same way: largest first.
export function sortedCounts(byState: Record<string, number> | undefined): Array<[string, number]> {
  return Object.entries(byState ?? {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

export function percent(used: number, total: number): number {
  if (!total || total <= 0) return 0;
  return Math.round((used / total) * 100);
}

export function mib(n: number | undefined): string {
  if (n === undefined) return "-";
  return n >= 1024 ? `${(n / 1024).toFixed(1)} GiB` : `${n} MiB`;
}

export function hostAlert(h: Host): string {
  if (h.state === "unreachable" || h.reachability === "unreachable") return "unreachable";
  return "";
}

export function time(ms: number | undefined): string {
  if (!ms) return "-";
  return new Date(ms).toLocaleTimeString();
}

// The actions the VM page offers for a VM's desired and observed state (the role is
// checked separately: a viewer sees none). Mirrors what routes_vms.cc accepts: reboot and
// pause need desired running, resume a paused VM, shutdown/force off anything not stopped.
export type VmAction = "start" | "shutdown" | "force-off" | "reboot" | "pause" | "resume" | "delete";

export function vmActions(vm: Vm): VmAction[] {
  if (vm.deletion_requested) return [];
  const state = vmState(vm);
  const desired = vm.desired_state ?? "stopped";
  const out: VmAction[] = [];
  if (desired === "paused" || state === "paused") out.push("resume");
  else if (desired !== "running") out.push("start");
  if (desired === "running" && state !== "paused") out.push("reboot", "pause");
  if (desired !== "stopped" || (state !== "stopped" && state !== "defined" && state !== "pending"))
    out.push("shutdown", "force-off");
  out.push("delete");
  return out;
}

// A live migration can be asked for a running or paused VM that is not deleting and not
// already migrating (the API refuses the rest: 409).
export function canMigrate(vm: Vm): boolean {
  if (vm.deletion_requested || vm.status?.migration) return false;
  const state = vmState(vm);
  return state === "running" || state === "paused";
}

// The migrate request: the host chosen, or {} for the scheduler's choice.
export function migrateBody(target: string): { host?: string } {
  const t = target.trim();
  return t ? { host: t } : {};
}

// Events about a VM or host: the event log names targets "vm/<name>", "host/<name>".
export function eventsFor(events: StrataEvent[], kind: "vm" | "host", name: string): StrataEvent[] {
  const target = `${kind}/${name}`;
  return events.filter((e) => e.target === target);
}

// A target's events for its page: the live ones (newest first, from the stream) and the
// ones read from the API (GET /api/v1/events?target=, newest first), without duplicates,
// newest first.
export function mergeEvents(live: StrataEvent[], history: StrataEvent[]): StrataEvent[] {
  const seen = new Set<number>();
  const out: StrataEvent[] = [];
  for (const e of [...live, ...history]) {
    if (e.seq === undefined || seen.has(e.seq)) continue;
    seen.add(e.seq);
    out.push(e);
  }
  return out.sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0));
}

export function bytes(n: number | undefined | null): string {
  if (n === undefined || n === null) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

// "0-3,8,10-11" from a sorted CPU list (NUMA nodes).
export function cpuRanges(cpus: number[] | undefined): string {
  if (!cpus || cpus.length === 0) return "-";
  const parts: string[] = [];
  let start = cpus[0]!;
  let prev = start;
  for (const c of [...cpus.slice(1), Number.NaN]) {
    if (c === prev + 1) {
      prev = c;
      continue;
    }
    parts.push(start === prev ? `${start}` : `${start}-${prev}`);
    start = prev = c;
  }
  return parts.join(",");
}

// A console WebSocket of a VM on this page's own origin (ws: or wss: as the page): the
// serial console ("console") or the VNC display ("vnc"). No token in it: the session cookie
// and the Origin header authenticate the upgrade.
export function consoleUrl(
  loc: { protocol: string; host: string },
  vm: string,
  kind: "console" | "vnc" = "console",
): string {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/api/v1/vms/${encodeURIComponent(vm)}/${kind}`;
}

// Key combinations the graphical console sends on request (keys a browser or the desktop
// would take for itself): [X11 keysym, KeyboardEvent.code] pressed in order, released in
// reverse (keySequence). The code lets noVNC send QEMU's scancode, independent of layout.
export const KEY_COMBOS: Record<string, Array<[number, string]>> = {
  "Ctrl-Alt-Del": [[0xffe3, "ControlLeft"], [0xffe9, "AltLeft"], [0xffff, "Delete"]],
  "Ctrl-Alt-Backspace": [[0xffe3, "ControlLeft"], [0xffe9, "AltLeft"], [0xff08, "Backspace"]],
  "Ctrl-Alt-F1": [[0xffe3, "ControlLeft"], [0xffe9, "AltLeft"], [0xffbe, "F1"]],
  "Ctrl-Alt-F2": [[0xffe3, "ControlLeft"], [0xffe9, "AltLeft"], [0xffbf, "F2"]],
  "Ctrl-Alt-F7": [[0xffe3, "ControlLeft"], [0xffe9, "AltLeft"], [0xffc4, "F7"]],
  "Alt-Tab": [[0xffe9, "AltLeft"], [0xff09, "Tab"]],
  "Esc": [[0xff1b, "Escape"]],
  "Super": [[0xffeb, "MetaLeft"]],
};

// The key events of a combination: every key down in order, then up in reverse.
export function keySequence(keys: Array<[number, string]>): Array<[number, string, boolean]> {
  return [
    ...keys.map(([k, c]): [number, string, boolean] => [k, c, true]),
    ...[...keys].reverse().map(([k, c]): [number, string, boolean] => [k, c, false]),
  ];
}

// X11 keysyms for typing `text` into a graphical console (RFB KeyEvent): Latin-1 characters
// are their own keysym, a newline is Return, a tab Tab; other characters use the Unicode
// keysym range (0x01000000 + code point), which QEMU maps where its keymap can.
export function textKeysyms(text: string): number[] {
  const out: number[] = [];
  for (const ch of text.replace(/\r\n?/g, "\n")) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === "\n") out.push(0xff0d);
    else if (ch === "\t") out.push(0xff09);
    else if (c >= 0x20 && c <= 0xff && c !== 0x7f) out.push(c);
    else if (c > 0xff) out.push(0x01000000 + c);
  }
  return out;
}

// A text as key strokes for the graphical console: each character its key's down and up
// events ([keysym, down]), inside Shift_L down/up when a US keyboard needs Shift for it
// (A-Z and ~!@#$%^&*()_+{}|:"<>?). QEMU maps a keysym to its scancode through its en-us
// keymap with the keyboard's current modifiers and adds no Shift of its own: "A" sent
// alone arrived as "a", "$" as "4", ">" as "." (seen on the tiny guest's screen in the
// browser test). Characters with no US key are sent as they are (QEMU maps what it can).
export const SHIFT_L = 0xffe1;
const US_SHIFTED = new Set([...'~!@#$%^&*()_+{}|:"<>?'].map((c) => c.codePointAt(0)));
export type KeyStroke = Array<[number, boolean]>;
export function textStrokes(text: string): KeyStroke[] {
  return textKeysyms(text).map((k): KeyStroke =>
    (k >= 0x41 && k <= 0x5a) || US_SHIFTED.has(k)
      ? [[SHIFT_L, true], [k, true], [k, false], [SHIFT_L, false]]
      : [[k, true], [k, false]]);
}

// The graphical console's scaling: a guest screen larger than the panel is scaled down to
// fit it (noVNC's scaleViewport, aspect kept); one that fits is shown 1:1, centred, because
// noVNC's fit would also scale it *up* (a 720x400 VGA text screen to 1.2x in a 480 px
// panel), which blurs text and gains nothing. Either way noVNC maps the pointer through the
// scale it drew with, so the pointer stays where the browser's is.
export function vncScaleDown(fb: { w: number; h: number }, panel: { w: number; h: number }): boolean {
  if (fb.w <= 0 || fb.h <= 0 || panel.w <= 0 || panel.h <= 0) return false;
  return fb.w > panel.w || fb.h > panel.h;
}

// Typing into the graphical console is paced. QEMU queues the key events a VNC client
// sends and hands them to the guest's keyboard one every `key-delay-ms` (10 ms by default,
// ui/vnc.c), in a queue of at most 1024 entries (ui/input.c: an event, its sync and its
// delay are 3); what arrives while that queue is full is dropped. A text sent faster than
// 100 key events a second therefore fills it and then loses keys: in the browser test, a
// 270-character line sent at 2 characters every 20 ms lost characters after ~190 and a
// dropped Shift release shifted the rest. So each character's strokes go out alone, then a
// pause of 12 ms per key event in them (QEMU's 10 ms and a margin): the queue never grows,
// and the guest's PS/2 buffer (16 bytes, hw/input/ps2.c) gets one key at a time.
// ~40 characters a second (~20 for capitals).
export const TYPE_BATCH = 2;
export const TYPE_PAUSE_MS = 20;
export const QEMU_KEY_DELAY_MS = 10;
export const TYPE_MS_PER_EVENT = 12;
// The pause after a batch of strokes: 12 ms per key event in it.
export function strokePauseMs(batch: KeyStroke[]): number {
  return batch.reduce((n, stroke) => n + stroke.length, 0) * TYPE_MS_PER_EVENT;
}

export interface TypeOptions<K> {
  batch?: number;
  pauseMs?: number | ((batch: K[]) => number);  // a function: the pause after that batch
  cancelled?: () => boolean;
  progress?: (sent: number) => void;
}

// Sends each key (a keysym, or a character's strokes) through `send`, `batch` at a time with
// `sleep(pauseMs)` between batches, until done or `cancelled()`; `progress(sent)` after each
// batch. Returns how many were sent.
export async function typePaced<K>(
  keysyms: K[],
  send: (key: K) => void,
  sleep: (ms: number) => Promise<void>,
  options: TypeOptions<K> = {},
): Promise<number> {
  const { batch = TYPE_BATCH, pauseMs = TYPE_PAUSE_MS, cancelled = () => false, progress = () => {} } = options;
  let sent = 0;
  let last: K[] = [];
  while (sent < keysyms.length && !cancelled()) {
    if (sent > 0) await sleep(typeof pauseMs === "function" ? pauseMs(last) : pauseMs);
    if (cancelled()) break;
    last = keysyms.slice(sent, sent + Math.max(1, batch));
    for (const k of last) send(k);
    sent = Math.min(keysyms.length, sent + Math.max(1, batch));
    progress(sent);
  }
  return sent;
}

// An event's result that is a failure (others are "ok" or a state such as "running").
export function badResult(result: string | undefined): boolean {
  return /^(error|fail|denied)/i.test(result ?? "");
}

// Keyset paging over a list whose answers carry `next` (the cursor of the following page,
// null on the last one): the cursors of the pages seen so far, so Previous needs no offset.
export class CursorPager {
  private cursors: string[] = [""];
  private nextCursor: string | null = null;

  get page(): number {
    return this.cursors.length;  // 1-based
  }
  get cursor(): string {
    return this.cursors[this.cursors.length - 1] ?? "";
  }
  get hasNext(): boolean {
    return this.nextCursor !== null && this.nextCursor !== "";
  }
  get hasPrevious(): boolean {
    return this.cursors.length > 1;
  }
  // The answer for the current page arrived.
  loaded(next: string | null | undefined): void {
    this.nextCursor = next ?? null;
  }
  next(): void {
    if (this.hasNext) this.cursors.push(this.nextCursor as string);
  }
  previous(): void {
    if (this.hasPrevious) this.cursors.pop();
  }
  // Filters or page size changed: back to the first page.
  reset(): void {
    this.cursors = [""];
    this.nextCursor = null;
  }
}

export type VmSort = "id" | "name" | "-name";

export interface VmListFilter {
  host: string;
  label: string;  // key=value, or empty
  limit: number;
  name?: string;  // substring of the VM name
  state?: string;  // observed state
  sort?: VmSort;
}

export const VM_STATES = [
  "pending", "scheduled", "defined", "starting", "running", "paused", "shutting_down",
  "stopped", "crashed", "unknown", "deleting", "error",
] as const;

// The VM list's filter, sort and page size from its URL's query (`/vms?host=h1&limit=100`).
export function vmListFilterFromUrl(search: string): Required<VmListFilter> {
  const q = new URLSearchParams(search);
  const sort = q.get("sort");
  const limit = Number(q.get("limit"));
  return {
    host: q.get("host") ?? "",
    label: q.get("label") ?? "",
    name: q.get("name") ?? "",
    state: q.get("state") ?? "",
    sort: sort === "id" || sort === "name" || sort === "-name" ? sort : "name",
    limit: Number.isInteger(limit) && limit >= 1 && limit <= 1000 ? limit : 50,
  };
}

// The inverse: the URL query (without "?") that vmListFilterFromUrl reads back as `f`;
// defaults are left out, so the plain list has a plain URL.
export function vmListSearch(f: Required<VmListFilter>): string {
  const q = new URLSearchParams();
  if (f.host) q.set("host", f.host);
  if (f.label.trim()) q.set("label", f.label.trim());
  if (f.name.trim()) q.set("name", f.name.trim());
  if (f.state) q.set("state", f.state);
  if (f.sort !== "name") q.set("sort", f.sort);
  if (f.limit !== 50) q.set("limit", String(f.limit));
  return q.toString();
}

// The query of GET /api/v1/vms for a filter and a cursor; an error names a bad label.
export function vmListQuery(f: VmListFilter, after: string): { query: Record<string, string | number>; error?: string } {
  const query: Record<string, string | number> = { limit: f.limit };
  if (after) query.after = after;
  if (f.host) query.host = f.host;
  const name = (f.name ?? "").trim().toLowerCase();
  if (name) query.name = name;
  if (f.state) query.state = f.state;
  if (f.sort && f.sort !== "id") query.sort = f.sort;
  const label = f.label.trim();
  if (label) {
    const eq = label.indexOf("=");
    if (eq <= 0) return { query, error: "label filter must be key=value" };
    query.label = label;
  }
  return { query };
}

// The host page's VM list: the filters of its URL, always on that host (a `host=` in the
// URL does not move the list to another host).
export function hostVmListQuery(host: string, f: VmListFilter, after: string): ReturnType<typeof vmListQuery> {
  return vmListQuery({ ...f, host }, after);
}

// A VM's cloud-init as GET shows it (no secret: password_set, user_data_bytes), one line a
// part, for the VM page.
export interface CloudInitShownLike {
  hostname?: string;
  users?: { name?: string; ssh_authorized_keys?: string[]; password_set?: boolean; sudo?: boolean; groups?: string[] }[];
  network?: { nic?: number; dhcp4?: boolean; address?: string }[];
  user_data_bytes?: number;
}
export function cloudInitLines(ci: CloudInitShownLike | null | undefined): string[] {
  if (!ci) return [];
  const lines: string[] = [];
  if (ci.hostname) lines.push(`host name ${ci.hostname}`);
  for (const u of ci.users ?? []) {
    const keys = u.ssh_authorized_keys?.length ?? 0;
    const parts = [`${keys} SSH key${keys === 1 ? "" : "s"}`, u.password_set ? "password set" : "password locked"];
    if (u.sudo) parts.push("sudo");
    if (u.groups?.length) parts.push(`groups ${u.groups.join(", ")}`);
    lines.push(`user ${u.name ?? "?"} (${parts.join(", ")})`);
  }
  for (const n of ci.network ?? []) lines.push(`NIC ${n.nic ?? 0}: ${n.dhcp4 ? "DHCP" : n.address ?? "-"}`);
  if (ci.user_data_bytes) lines.push(`user-data ${ci.user_data_bytes} bytes`);
  return lines.length ? lines : ["default (host name = VM name)"];
}

// What a live event changes on a host page: "page" (the host itself: its state, heartbeat,
// events), "summary" (a VM event that may be this host's: what its VMs hold, its datastores'
// use; the capacity bars), or "none". A VM event from another host's agent (actor
// agent:<that host's id or name>) is not this host's; one from a token or the controller
// does not say its host, so it counts.
export function hostPageReload(e: { actor?: string; target?: string } | undefined, host: { name: string; id?: string }): "page" | "summary" | "none" {
  const target = e?.target ?? "";
  if (target === `host/${host.name}`) return "page";
  if (!target.startsWith("vm/")) return "none";
  const actor = e?.actor ?? "";
  if (actor.startsWith("agent:")) {
    const who = actor.slice("agent:".length);
    return who === host.name || (!!host.id && who === host.id) ? "summary" : "none";
  }
  return "summary";
}
