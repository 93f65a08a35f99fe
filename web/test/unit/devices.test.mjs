// Unit tests of the VM page's disks and NICs (src/devices-logic.ts): sizes with units, the
// attach and resize bodies as the API takes them, which actions a disk or NIC allows.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  GiB, MiB, TiB, MAX_DISK_BYTES, canAttach, deviceProblem, diskActions, diskAttachBody, macProblem, nicActions,
  nicAttachBody, qemuRuns, resizeBody, sizeBytes, sizeInput, slotText, specDisks, specNics, EMPTY_DISK_FORM, EMPTY_NIC_FORM,
} from "../../build-unit/devices-logic.js";

test("sizes: the unit chosen, or one typed along; whole MiB, 1 MiB to 64 TiB", () => {
  assert.deepEqual(sizeBytes("20", "GiB", "f"), { ok: true, value: 20 * GiB });
  assert.equal(sizeBytes(" 512 ", "MiB", "f").value, 512 * MiB);
  assert.equal(sizeBytes("1.5", "TiB", "f").value, 1.5 * TiB);
  assert.equal(sizeBytes("512M", "GiB", "f").value, 512 * MiB, "a typed unit wins over the one chosen");
  assert.equal(sizeBytes("2 GiB", "MiB", "f").value, 2 * GiB);
  assert.equal(sizeBytes("2gb", "MiB", "f").value, 2 * GiB);
  assert.equal(sizeBytes("1t", "MiB", "f").value, TiB);
  assert.equal(sizeBytes("2048k", "GiB", "f").value, 2 * MiB);
  assert.equal(sizeBytes("0.3", "GiB", "f").value, 307 * MiB, "rounded to whole MiB");
  assert.equal(sizeBytes("64", "TiB", "f").value, MAX_DISK_BYTES);
  for (const bad of ["", "  ", "-1", "abc", "1.", "1e3", "10 X", "1,5"])
    assert.equal(sizeBytes(bad, "GiB", "disk.size_bytes").problem.field, "disk.size_bytes", bad);
  assert.match(sizeBytes("0", "GiB", "f").problem.message, /at least 1 MiB/);
  assert.match(sizeBytes("100k", "GiB", "f").problem.message, /at least 1 MiB/);
  assert.match(sizeBytes("65", "TiB", "f").problem.message, /64 TiB/);
});

test("size box: the largest whole unit, two decimals at most", () => {
  assert.deepEqual(sizeInput(20 * GiB), { text: "20", unit: "GiB" });
  assert.deepEqual(sizeInput(1.5 * TiB), { text: "1.5", unit: "TiB" });
  assert.deepEqual(sizeInput(512 * MiB), { text: "512", unit: "MiB" });
  assert.deepEqual(sizeInput(GiB + GiB / 3), { text: "1.33", unit: "GiB" });
  assert.deepEqual(sizeInput(undefined), { text: "", unit: "GiB" });
});

const disks = [{ name: "root", boot: true, image: "tiny", hotplug_slot: 0 }, { name: "data", size_bytes: GiB, hotplug_slot: 2 }];
const form = (o = {}) => ({ ...EMPTY_DISK_FORM, name: "scratch", size: "1", ...o });

test("attach disk: a blank disk of a size, or an image (grown to a size if given), read-only", () => {
  assert.deepEqual(diskAttachBody(form(), disks).value, { name: "scratch", size_bytes: GiB });
  assert.deepEqual(diskAttachBody(form({ name: " logs ", size: "512", unit: "MiB", readonly: true }), disks).value,
    { name: "logs", size_bytes: 512 * MiB, readonly: true });
  assert.deepEqual(diskAttachBody(form({ source: "image", image: "debian", size: "" }), disks).value, { name: "scratch", image: "debian" });
  assert.deepEqual(diskAttachBody(form({ source: "image", image: "debian", size: "20" }), disks).value,
    { name: "scratch", image: "debian", size_bytes: 20 * GiB });
});

test("attach disk: on a datastore of the VM's host, or (none chosen) in the host's own store", () => {
  assert.deepEqual(diskAttachBody(form({ datastore: "shared" }), disks).value, { name: "scratch", size_bytes: GiB, datastore: "shared" });
  assert.deepEqual(diskAttachBody(form({ datastore: "" }), disks).value, { name: "scratch", size_bytes: GiB });
  assert.equal(EMPTY_DISK_FORM.datastore, "");
});

test("attach disk: each objection names the API's field", () => {
  assert.equal(diskAttachBody(form({ name: "" }), disks).problem.field, "disk.name");
  assert.equal(diskAttachBody(form({ name: "Data_1" }), disks).problem.field, "disk.name");
  assert.equal(diskAttachBody(form({ name: "a".repeat(64) }), disks).problem.field, "disk.name");
  assert.match(diskAttachBody(form({ name: "data" }), disks).problem.message, /has a disk named data/);
  assert.equal(diskAttachBody(form({ size: "" }), disks).problem.field, "disk.size_bytes");
  assert.equal(diskAttachBody(form({ size: "lots" }), disks).problem.field, "disk.size_bytes");
  assert.equal(diskAttachBody(form({ source: "image", image: "" }), disks).problem.field, "disk.image");
  assert.equal(diskAttachBody(form({ source: "image", image: "debian", size: "x" }), disks).problem.field, "disk.size_bytes");
  const full = Array.from({ length: 16 }, (_, i) => ({ name: `d${i}` }));
  assert.equal(diskAttachBody(form(), full).problem.field, "disk");
});

test("resize: grow only, more than the size recorded", () => {
  assert.deepEqual(resizeBody("2", "GiB", GiB), { ok: true, value: { size_bytes: 2 * GiB } });
  assert.deepEqual(resizeBody("3G", "MiB", undefined).value, { size_bytes: 3 * GiB }, "no size recorded: the host checks");
  assert.equal(resizeBody("1", "GiB", GiB).problem.field, "size_bytes");
  assert.match(resizeBody("512", "MiB", GiB).problem.message, /only grow: more than 1 GiB/);
  assert.equal(resizeBody("", "GiB", GiB).problem.field, "size_bytes");
});

test("attach NIC: user or a bridge, an optional MAC checked as the API does", () => {
  const nics = [{ mode: "user", mac: "52:54:00:12:34:56", hotplug_slot: 0 }];
  assert.deepEqual(nicAttachBody(EMPTY_NIC_FORM, nics).value, { mode: "user" });
  assert.deepEqual(nicAttachBody({ mode: "bridge", bridge: " br0 ", mac: "" }, nics).value, { mode: "bridge", bridge: "br0" });
  assert.deepEqual(nicAttachBody({ mode: "user", bridge: "ignored", mac: "52-54-00-AB-CD-EF" }, nics).value,
    { mode: "user", mac: "52:54:00:ab:cd:ef" });
  assert.equal(nicAttachBody({ mode: "bridge", bridge: "", mac: "" }, nics).problem.field, "nic.bridge");
  assert.equal(nicAttachBody({ mode: "bridge", bridge: "br/0", mac: "" }, nics).problem.field, "nic.bridge");
  assert.equal(nicAttachBody({ mode: "bridge", bridge: "a-very-long-bridge", mac: "" }, nics).problem.field, "nic.bridge");
  assert.match(nicAttachBody({ mode: "user", bridge: "", mac: "52:54:00:12:34:56" }, nics).problem.message, /has a NIC with MAC/);
  assert.equal(nicAttachBody({ mode: "user", bridge: "", mac: "52:54:00:12:34" }, nics).problem.field, "nic.mac");
  assert.equal(nicAttachBody(EMPTY_NIC_FORM, Array(8).fill(nics[0])).problem.field, "nic");
  assert.equal(macProblem("52:54:00:00:00:01"), "");
  assert.match(macProblem("53:54:00:00:00:01"), /multicast/);
  assert.match(macProblem("00:16:3e:00:00:01"), /locally administered/);
  assert.match(macProblem("zz:54:00:00:00:01"), /hex/);
});

const vm = (state, extra = {}) => ({ host: "h1", status: { state }, ...extra });

test("actions: the boot disk never leaves; a running VM loses only what is on a hot-plug slot", () => {
  const [root, data] = disks;
  const boot = { name: "extra", hotplug_slot: 0 };
  for (const s of ["running", "paused", "starting", "shutting_down"]) assert.equal(qemuRuns(vm(s)), true, s);
  for (const s of ["stopped", "defined", "crashed", "unknown"]) assert.equal(qemuRuns(vm(s)), false, s);
  assert.equal(qemuRuns({ status: { state: "running" } }), false, "on no host: recorded at once");

  assert.deepEqual(diskActions(vm("running"), data), { resize: { ok: true, why: "" }, detach: { ok: true, why: "" } });
  assert.match(diskActions(vm("running"), root).detach.why, /boot disk/);
  assert.match(diskActions(vm("stopped"), root).detach.why, /boot disk/);
  assert.equal(diskActions(vm("running"), root).resize.ok, true, "the boot disk grows");
  assert.match(diskActions(vm("running"), boot).detach.why, /while the VM is off/);
  assert.equal(diskActions(vm("stopped"), boot).detach.ok, true);
  assert.match(diskActions(vm("stopped"), { name: "ro", readonly: true }).resize.why, /read-only/);
  assert.match(diskActions(vm("running", { deletion_requested: true }), data).detach.why, /being deleted/);
  assert.match(diskActions(vm("running", { status: { state: "running", migration: { phase: "copying" } } }), data).resize.why, /migrating/);

  assert.equal(nicActions(vm("running"), { mode: "user", hotplug_slot: 1 }).detach.ok, true);
  assert.match(nicActions(vm("running"), { mode: "user", hotplug_slot: 0 }).detach.why, /while the VM is off/);
  assert.equal(nicActions(vm("stopped"), { mode: "user" }).detach.ok, true);

  assert.equal(canAttach(vm("running"), "disk", 2).ok, true);
  assert.match(canAttach(vm("running"), "disk", 16).why, /16 disks/);
  assert.match(canAttach(vm("running"), "nic", 8).why, /8 NICs/);
  assert.match(canAttach(vm("stopped", { deletion_requested: true }), "nic", 1).why, /being deleted/);
  assert.match(canAttach(vm("stopped", { spec: { machine: "pc" } }), "disk", 1).why, /i440fx/);
  assert.match(canAttach(vm("stopped", { spec: { machine: "pc-i440fx-8.2" } }), "nic", 1).why, /no hot-plug slots/);
  assert.equal(canAttach(vm("stopped", { spec: { machine: "pc-q35-8.2" } }), "nic", 1).ok, true);
});

test("the spec's devices, slots, the API's field names", () => {
  assert.deepEqual(specDisks({ disks: [{ name: "root" }, null, { size_bytes: 1 }] }), [{ name: "root" }]);
  assert.deepEqual(specDisks(undefined), []);
  assert.deepEqual(specNics({ nics: [{ mode: "user" }, "x"] }), [{ mode: "user" }]);
  assert.equal(slotText(0), "boot-time");
  assert.equal(slotText(undefined), "boot-time");
  assert.equal(slotText(3), "3");
  assert.deepEqual(deviceProblem({ field: "disk.base_image", message: "m" }), { field: "disk.image", message: "m" });
  assert.deepEqual(deviceProblem({ field: "nic.mac", message: "m" }), { field: "nic.mac", message: "m" });
});
