// Unit tests of the console's own logic (node's test runner on the tsc output of
// src/format.ts and src/events.ts: `npm test`).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  canOperate, countByState, sortedCounts, percent, mib, hostAlert, vmActions, eventsFor, bytes,
  cpuRanges, consoleUrl, textKeysyms, textStrokes, SHIFT_L, strokePauseMs, TYPE_MS_PER_EVENT, QEMU_KEY_DELAY_MS, KEY_COMBOS, keySequence, badResult, CursorPager, vmListQuery, vmListFilterFromUrl, mergeEvents,
  hostVmListQuery, vmListSearch, cloudInitLines, hostPageReload, vncScaleDown, typePaced, TYPE_BATCH, TYPE_PAUSE_MS,
} from "../../build-unit/format.js";
import { SseParser } from "../../build-unit/events.js";

test("roles: only operators and admins operate", () => {
  assert.equal(canOperate("viewer"), false);
  assert.equal(canOperate(""), false);
  assert.equal(canOperate("operator"), true);
  assert.equal(canOperate("admin"), true);
});

test("VMs by state, largest first", () => {
  const vm = (s) => ({ status: { state: s } });
  assert.deepEqual(countByState([vm("running"), vm("stopped"), vm("running"), {}]), [
    ["running", 2], ["stopped", 1], ["unknown", 1],
  ]);
});

test("server-side counts, largest first, ties by name", () => {
  assert.deepEqual(sortedCounts({ stopped: 2, running: 5, paused: 2 }), [["running", 5], ["paused", 2], ["stopped", 2]]);
  assert.deepEqual(sortedCounts(undefined), []);
});

test("percentages, sizes and host alerts", () => {
  assert.equal(percent(3, 4), 75);
  assert.equal(percent(1, 0), 0);
  assert.equal(mib(2048), "2.0 GiB");
  assert.equal(mib(64), "64 MiB");
  assert.equal(hostAlert({ state: "unreachable" }), "unreachable");
  assert.equal(hostAlert({ state: "up", reachability: "up" }), "");
});

test("SSE parser: named events, ids, split chunks, comments, CRLF", () => {
  const p = new SseParser();
  assert.deepEqual(p.feed(": keep-alive\n\nid: 7\nevent: vm.start\nda"), []);
  assert.deepEqual(p.feed('ta: {"seq":7}\n\n'), [{ id: "7", event: "vm.start", data: '{"seq":7}' }]);
  assert.deepEqual(p.feed("id: 8\r\ndata: a\r\ndata: b\r\n\r\n"), [{ id: "8", event: "message", data: "a\nb" }]);
  assert.deepEqual(p.feed("event: x\n\n"), []);  // no data: no message
});

test("VM page actions follow desired and observed state", () => {
  const vm = (desired, state, extra = {}) => ({ desired_state: desired, status: { state }, ...extra });
  assert.deepEqual(vmActions(vm("stopped", "stopped")), ["start", "delete"]);
  assert.deepEqual(vmActions(vm("running", "running")), ["reboot", "pause", "shutdown", "force-off", "delete"]);
  assert.deepEqual(vmActions(vm("running", "paused")), ["resume", "shutdown", "force-off", "delete"]);
  // a shutdown in progress can still be forced
  assert.deepEqual(vmActions(vm("stopped", "shutting_down")), ["start", "shutdown", "force-off", "delete"]);
  assert.deepEqual(vmActions(vm("running", "running", { deletion_requested: true })), []);
});

test("events of one target", () => {
  const ev = [{ target: "vm/a" }, { target: "vm/ab" }, { target: "host/a" }, { target: "vm/a" }];
  assert.equal(eventsFor(ev, "vm", "a").length, 2);
  assert.equal(eventsFor(ev, "host", "a").length, 1);
  assert.equal(badResult("error 409"), true);
  assert.equal(badResult("running"), false);
  assert.equal(badResult("ok"), false);
});

test("bytes, CPU ranges, console URL", () => {
  assert.equal(bytes(512), "512 B");
  assert.equal(bytes(1536), "1.5 KiB");
  assert.equal(bytes(256 * 1024 ** 3), "256.0 GiB");
  assert.equal(bytes(undefined), "-");
  assert.equal(cpuRanges([0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
  assert.equal(cpuRanges([5]), "5");
  assert.equal(cpuRanges([]), "-");
  assert.equal(consoleUrl({ protocol: "http:", host: "127.0.0.1:7480" }, "web-1"),
    "ws://127.0.0.1:7480/api/v1/vms/web-1/console");
  assert.equal(consoleUrl({ protocol: "https:", host: "m.example:7443" }, "a b"),
    "wss://m.example:7443/api/v1/vms/a%20b/console");
  assert.equal(consoleUrl({ protocol: "https:", host: "m.example:7443" }, "web-1", "vnc"),
    "wss://m.example:7443/api/v1/vms/web-1/vnc");
});

test("key combinations for the graphical console: down in order, up in reverse", () => {
  assert.deepEqual(keySequence(KEY_COMBOS["Ctrl-Alt-F2"]), [
    [0xffe3, "ControlLeft", true], [0xffe9, "AltLeft", true], [0xffbf, "F2", true],
    [0xffbf, "F2", false], [0xffe9, "AltLeft", false], [0xffe3, "ControlLeft", false],
  ]);
  assert.deepEqual(keySequence(KEY_COMBOS["Esc"]), [[0xff1b, "Escape", true], [0xff1b, "Escape", false]]);
  for (const [name, keys] of Object.entries(KEY_COMBOS)) assert.ok(keys.length > 0, name);
});

test("text typed into the graphical console as keysyms", () => {
  assert.deepEqual(textKeysyms("ls -l\n"), [0x6c, 0x73, 0x20, 0x2d, 0x6c, 0xff0d]);
  assert.deepEqual(textKeysyms("a\r\nb\tü"), [0x61, 0xff0d, 0x62, 0xff09, 0xfc]);
  assert.deepEqual(textKeysyms("€\u0007"), [0x010020ac]);
});

test("text typed into the graphical console: Shift around what a US keyboard shifts", () => {
  const S = SHIFT_L;
  assert.deepEqual(textStrokes("aA"), [[[0x61, true], [0x61, false]], [[S, true], [0x41, true], [0x41, false], [S, false]]]);
  // $((2*3)) >: every shifted symbol wrapped, digits and space not
  const shifted = textStrokes("$((2*3)) >").map((s) => s.length === 4);
  assert.deepEqual(shifted, [true, true, true, false, true, false, true, true, false, true]);
  for (const c of '~!@#$%^&*()_+{}|:"<>?') assert.equal(textStrokes(c)[0].length, 4, c);
  for (const c of "`1234567890-=[]\\;',./ z\n\tü") assert.equal(textStrokes(c)[0].length, 2, JSON.stringify(c));
});

test("keyset pager: next, previous, last page, reset", () => {
  const p = new CursorPager();
  assert.equal(p.page, 1);
  assert.equal(p.cursor, "");
  assert.equal(p.hasPrevious, false);
  p.loaded("vm-050");
  assert.equal(p.hasNext, true);
  p.next();
  assert.equal(p.page, 2);
  assert.equal(p.cursor, "vm-050");
  p.loaded(null);  // last page
  assert.equal(p.hasNext, false);
  p.next();  // no-op
  assert.equal(p.page, 2);
  p.previous();
  assert.equal(p.cursor, "");
  p.loaded("vm-050");
  p.next();
  p.reset();
  assert.equal(p.page, 1);
  assert.equal(p.hasNext, false);
});

test("VM list query: limit, cursor, host, label", () => {
  assert.deepEqual(vmListQuery({ host: "", label: "", limit: 50 }, ""), { query: { limit: 50 } });
  assert.deepEqual(vmListQuery({ host: "h1", label: " tier=web ", limit: 25 }, "vm-9"),
    { query: { limit: 25, after: "vm-9", host: "h1", label: "tier=web" } });
  assert.deepEqual(vmListQuery({ host: "", label: "", limit: 50, name: " Web ", state: "running", sort: "-name" }, ""),
    { query: { limit: 50, name: "web", state: "running", sort: "-name" } });
  assert.deepEqual(vmListQuery({ host: "", label: "", limit: 50, name: "", state: "", sort: "id" }, ""),
    { query: { limit: 50 } });
  assert.equal(vmListQuery({ host: "", label: "tier", limit: 50 }, "").error, "label filter must be key=value");
  assert.equal(vmListQuery({ host: "", label: "=web", limit: 50 }, "").error, "label filter must be key=value");
});

test("the host page's VM query: the URL's filters, paged, always on that host", () => {
  const f = vmListFilterFromUrl("?host=other&state=running&sort=-name&limit=100&name=Db");
  assert.deepEqual(hostVmListQuery("h1", f, "vm-7"),
    { query: { limit: 100, after: "vm-7", host: "h1", name: "db", state: "running", sort: "-name" } });
  assert.deepEqual(hostVmListQuery("h1", vmListFilterFromUrl(""), ""), { query: { limit: 50, host: "h1", sort: "name" } });
  assert.equal(hostVmListQuery("h1", { host: "", label: "x", limit: 50 }, "").error, "label filter must be key=value");
});

test("a target's events: live and read merged, no duplicates, newest first", () => {
  const e = (seq, action) => ({ seq, action, target: "vm/a" });
  assert.deepEqual(mergeEvents([e(9, "vm.stop"), e(7, "vm.start")], [e(7, "vm.start"), e(3, "vm.create"), e(8, "vm.pause")])
    .map((x) => x.seq), [9, 8, 7, 3]);
  assert.deepEqual(mergeEvents([], []), []);
  assert.deepEqual(mergeEvents([{ action: "no seq" }], [e(1, "x")]).map((x) => x.seq), [1]);
});

test("the VM list's filter from its URL (what the page and the start-up prefetch both ask)", () => {
  assert.deepEqual(vmListFilterFromUrl(""), { host: "", label: "", name: "", state: "", sort: "name", limit: 50 });
  assert.deepEqual(vmListFilterFromUrl("?host=h1&label=tier%3Dweb&name=web&state=running&sort=-name&limit=100"),
    { host: "h1", label: "tier=web", name: "web", state: "running", sort: "-name", limit: 100 });
  assert.equal(vmListFilterFromUrl("?sort=created&limit=5000").sort, "name");
  assert.equal(vmListFilterFromUrl("?limit=5000").limit, 50);
  assert.equal(vmListFilterFromUrl("?limit=0").limit, 50);
});

test("the VM list's URL from its filter: read back the same, defaults left out", () => {
  assert.equal(vmListSearch(vmListFilterFromUrl("")), "");
  const f = { host: "h1", label: " tier=web ", name: " Db ", state: "running", sort: "-name", limit: 100 };
  assert.equal(vmListSearch(f), "host=h1&label=tier%3Dweb&name=Db&state=running&sort=-name&limit=100");
  assert.deepEqual(vmListFilterFromUrl("?" + vmListSearch(f)), { ...f, label: "tier=web", name: "Db" });
  assert.equal(vmListSearch({ ...vmListFilterFromUrl(""), sort: "id", limit: 25 }), "sort=id&limit=25");
});

test("typing into the graphical console is paced: a few keys, then a pause", async () => {
  const log = [];
  const sleep = async (ms) => { log.push(`sleep ${ms}`); };
  const sent = await typePaced([1, 2, 3, 4, 5], (k) => log.push(k), sleep, { progress: (n) => log.push(`at ${n}`) });
  assert.equal(TYPE_BATCH, 2);
  assert.equal(sent, 5);
  const p = `sleep ${TYPE_PAUSE_MS}`;
  assert.deepEqual(log, [1, 2, "at 2", p, 3, 4, "at 4", p, 5, "at 5"]);
  // Cancelled during a pause (the console closed): nothing more is sent.
  const out = [];
  let stop = false;
  const n = await typePaced([1, 2, 3, 4], (k) => out.push(k), async () => { stop = true; }, { batch: 1, cancelled: () => stop });
  assert.equal(n, 1);
  assert.deepEqual(out, [1]);
  assert.equal(await typePaced([], () => assert.fail("nothing to send"), sleep), 0);
  // A batch below 1 still makes progress.
  const one = [];
  assert.equal(await typePaced([7, 8], (k) => one.push(k), async () => {}, { batch: 0 }), 2);
  assert.deepEqual(one, [7, 8]);
});

test("the graphical console types a character at a time, no faster than QEMU hands keys on", async () => {
  // QEMU passes one key event every 10 ms; the pause after a character is 12 ms per event.
  assert.ok(TYPE_MS_PER_EVENT > QEMU_KEY_DELAY_MS);
  const strokes = textStrokes("aB\n");
  assert.deepEqual(strokes.map((s) => strokePauseMs([s])), [24, 48, 24]);
  const log = [];
  const sent = await typePaced(strokes, (s) => log.push(s.length), async (ms) => { log.push(`sleep ${ms}`); },
    { batch: 1, pauseMs: strokePauseMs });
  assert.equal(sent, 3);
  assert.deepEqual(log, [2, "sleep 24", 4, "sleep 48", 2]);
  // Never faster than QEMU drains: the pauses add up to more than 10 ms per event sent.
  const text = textStrokes("PACED-$((6*7))-Ab3 >/dev/ttyS0\n");
  const events = text.reduce((n, s) => n + s.length, 0);
  const paused = text.slice(0, -1).reduce((ms, s) => ms + strokePauseMs([s]), 0);
  assert.ok(paused >= (events - text.at(-1).length) * QEMU_KEY_DELAY_MS, `${paused} ms for ${events} events`);
});

test("graphical console: scaled down when the guest's screen is larger than the panel, else 1:1", () => {
  const panel = { w: 1000, h: 480 };
  assert.equal(vncScaleDown({ w: 720, h: 400 }, panel), false);  // VGA text: 1:1, not blown up
  assert.equal(vncScaleDown({ w: 1000, h: 480 }, panel), false);
  assert.equal(vncScaleDown({ w: 1024, h: 768 }, panel), true);  // taller than the panel
  assert.equal(vncScaleDown({ w: 1280, h: 400 }, panel), true);  // wider
  assert.equal(vncScaleDown({ w: 720, h: 400 }, { w: 360, h: 480 }), true);  // a phone
  assert.equal(vncScaleDown({ w: 0, h: 0 }, panel), false);  // no framebuffer yet
  assert.equal(vncScaleDown({ w: 720, h: 400 }, { w: 0, h: 0 }), false);  // panel not laid out
});

test("a VM's cloud-init on its page: one line a part, no secret", () => {
  assert.deepEqual(cloudInitLines(null), []);
  assert.deepEqual(cloudInitLines({}), ["default (host name = VM name)"]);
  assert.deepEqual(cloudInitLines({ hostname: "web", users: [{ name: "admin", ssh_authorized_keys: ["k1", "k2"], password_set: false, sudo: true }],
    network: [{ nic: 0, dhcp4: true }, { nic: 1, address: "192.0.2.10/24" }], user_data_bytes: 42 }),
  ["host name web", "user admin (2 SSH keys, password locked, sudo)", "NIC 0: DHCP", "NIC 1: 192.0.2.10/24", "user-data 42 bytes"]);
  assert.deepEqual(cloudInitLines({ users: [{ name: "u", ssh_authorized_keys: ["k"], password_set: true, groups: ["adm", "wheel"] }] }),
    ["user u (1 SSH key, password set, groups adm, wheel)"]);
});

test("a host page: its own events reload it, its VMs' events its summary, other hosts' nothing", () => {
  const h = { name: "h1", id: "4f1c" };
  assert.equal(hostPageReload({ actor: "agent:h1", target: "host/h1" }, h), "page");
  assert.equal(hostPageReload({ actor: "agent:h2", target: "host/h2" }, h), "none");
  assert.equal(hostPageReload({ actor: "agent:4f1c", target: "vm/web-1" }, h), "summary");  // vm.state: the host's id
  assert.equal(hostPageReload({ actor: "agent:h1", target: "vm/web-1" }, h), "summary");
  assert.equal(hostPageReload({ actor: "agent:9e2a", target: "vm/web-2" }, h), "none");  // another host's agent
  assert.equal(hostPageReload({ actor: "token:admin", target: "vm/web-3" }, h), "summary");  // host not said
  assert.equal(hostPageReload({ actor: "controller:vm", target: "vm/web-3" }, h), "summary");
  assert.equal(hostPageReload({ actor: "token:admin", target: "image/tiny" }, h), "none");
  assert.equal(hostPageReload(undefined, h), "none");
  assert.equal(hostPageReload({ actor: "agent:4f1c", target: "vm/x" }, { name: "h1" }), "none");  // id not known yet
});

test("live migration: offered for running or paused VMs not deleting or migrating; the body", async () => {
  const { canMigrate, migrateBody } = await import("../../build-unit/format.js");
  const vm = (state, extra = {}) => ({ name: "v", desired_state: "running", status: { state }, ...extra });
  assert.equal(canMigrate(vm("running")), true);
  assert.equal(canMigrate(vm("paused")), true);
  assert.equal(canMigrate(vm("stopped")), false);
  assert.equal(canMigrate(vm("running", { deletion_requested: true })), false);
  assert.equal(canMigrate({ ...vm("running"), status: { state: "running", migration: { phase: "copying" } } }), false);
  assert.deepEqual(migrateBody(""), {});
  assert.deepEqual(migrateBody(" h2 "), { host: "h2" });
});

test("SSE: an id-only block sets the last event id without an event (a stream's start)", () => {
  const p = new SseParser();
  assert.deepEqual(p.feed(": stream start\n\nid: 41\n\n"), []);
  assert.equal(p.lastEventId, "41");
  const got = p.feed("id: 42\nevent: vm.start\ndata: {}\n\n");
  assert.equal(got.length, 1);
  assert.equal(p.lastEventId, "42");
  assert.equal(new SseParser().lastEventId, "");
});
