// Unit tests of the create wizard's logic (src/wizard.ts): form -> create body, and the
// scheduler's dry-run answer -> rows.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BLANK_DISK, EMPTY_FORM, MAX_DISKS, MAX_NICS, diskName, formKeyOfField, parsePairs, vmCreateBody, placementRows, placementHeadline,
} from "../../build-unit/wizard.js";

// One disk row of the form, and a form with one blank disk of `gib` GiB.
const disk = (o) => ({ ...BLANK_DISK, ...o });
const blank = (gib) => [disk({ sizeGib: gib })];

test("labels and selectors: key=value by commas or lines, errors name the field", () => {
  assert.deepEqual(parsePairs(" tier=web, team = a \n zone=", "labels"), { pairs: { tier: "web", team: "a", zone: "" } });
  assert.deepEqual(parsePairs("", "labels"), { pairs: {} });
  assert.equal(parsePairs("tier", "labels").error.field, "labels");
  assert.equal(parsePairs("=web", "node_selector").error.field, "node_selector");
  assert.match(parsePairs("a=1,a=2", "labels").error.message, /twice/);
});

test("create body from the form", () => {
  const f = { ...EMPTY_FORM, name: "web-1", vcpus: "2", memoryMib: "128", disks: [disk({ image: "tiny-base" })], kernel: "tiny-kernel",
    initrd: "tiny-initrd", cmdline: "console=ttyS0", labels: "tier=web", nodeSelector: "zone=a" };
  assert.deepEqual(vmCreateBody(f).body, {
    name: "web-1", vcpus: 2, memory_mib: 128, machine: "q35", vnc: true, start: true, kernel: "tiny-kernel", initrd: "tiny-initrd",
    cmdline: "console=ttyS0", disks: [{ name: "root", boot: true, image: "tiny-base" }], nics: [{ mode: "user" }],
    labels: { tier: "web" }, node_selector: { zone: "a" },
  });
  // a blank disk of 2 GiB, no NIC, pinned, not started
  assert.deepEqual(vmCreateBody({ ...EMPTY_FORM, name: "b", disks: blank("2"), nics: [], host: "h1", start: false }).body, {
    name: "b", vcpus: 1, memory_mib: 512, machine: "q35", vnc: true, start: false, disks: [{ name: "root", boot: true, size_bytes: 2 * 1024 ** 3 }], host: "h1",
  });
  // no graphical console: vnc false in the body
  assert.equal(vmCreateBody({ ...EMPTY_FORM, name: "c", disks: blank("1"), vnc: false }).body.vnc, false);
  const err = (f) => vmCreateBody({ ...EMPTY_FORM, disks: blank("1"), ...f }).error?.field;
  assert.equal(err({ name: "" }), "name");
  assert.equal(err({ name: "Bad_Name" }), "name");
  assert.equal(err({ name: "a", vcpus: "0" }), "vcpus");
  assert.equal(err({ name: "a", memoryMib: "1.5" }), "memory_mib");
  assert.equal(err({ name: "a", disks: blank("-1") }), "disks[0].size_bytes");
  assert.equal(err({ name: "a", disks: blank("") }), "disks[0].size_bytes");  // a blank disk needs a size
  assert.equal(err({ name: "a", disks: [] }), "disks");  // nothing to boot
  assert.equal(vmCreateBody({ ...EMPTY_FORM, name: "a" }).error?.field, "disks[0].size_bytes");  // the empty form's disk
  assert.equal(err({ name: "a", labels: "x" }), "labels");
  assert.equal(err({ name: "a", nodeSelector: "x" }), "node_selector");
  assert.equal(err({ name: "a" }), undefined);
});

test("placement rows: the choice, other fits, refused hosts with reasons", () => {
  const p = { fits: true, host: "h2", hosts: 3, summary: "memory filter rejected 1 host",
    candidates: [{ host: "h2", score: 80.04 }, { host: "h1", score: 41 }],
    rejected: [{ host: "h3", filter: "memory", reason: "needs 4096 MiB, 1024 MiB free" }] };
  assert.deepEqual(placementRows(p), [
    { host: "h2", verdict: "chosen", why: "passes every filter, best score 80.0" },
    { host: "h1", verdict: "fits", why: "fits, lower score 41.0" },
    { host: "h3", verdict: "refused", why: "memory: needs 4096 MiB, 1024 MiB free" },
  ]);
  assert.equal(placementHeadline(p), "Goes to h2 (best of 2 fitting, 1 refused)");
  assert.equal(placementHeadline({ ...p, hosts: 1, candidates: [p.candidates[0]], rejected: [] }), "Goes to h2");
  assert.equal(placementHeadline({ fits: false, host: null, hosts: 1, summary: "cpu filter rejected 1 host", candidates: [], rejected: [] }),
    "No host fits: cpu filter rejected 1 host");
  assert.equal(placementHeadline({ fits: false, host: null, hosts: 0, summary: "", candidates: [], rejected: [] }), "No hosts are enrolled");
});

test("cloud-init from the form: user, keys (one a line), hash as given, user-data; none when empty", () => {
  const base = { ...EMPTY_FORM, name: "d", disks: blank("1") };
  assert.equal(vmCreateBody(base).body.cloud_init, undefined);
  const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2bUq0n3l1S9yQh1m0mC4sQkQ7n0wq me@x";
  assert.deepEqual(vmCreateBody({ ...base, ciHostname: " web.example ", ciUser: "admin", ciKeys: `${key}\r\n\n  ssh-rsa AAAAB3Nza x \n`,
    ciPasswordHash: "$6$s$h", ciSudo: true, ciUserData: "#cloud-config\r\npackages: [nginx]\r\n" }).body.cloud_init, {
    hostname: "web.example",
    users: [{ name: "admin", sudo: true, ssh_authorized_keys: [key, "ssh-rsa AAAAB3Nza x"], password_hash: "$6$s$h" }],
    user_data: "#cloud-config\npackages: [nginx]\n",
  });
  assert.deepEqual(vmCreateBody({ ...base, ciHostname: "h" }).body.cloud_init, { hostname: "h" });
  assert.deepEqual(vmCreateBody({ ...base, ciUser: "u" }).body.cloud_init, { users: [{ name: "u", sudo: false }] });
  // keys, a hash or sudo need a user: the form says so, naming the user field
  for (const f of [{ ciKeys: key }, { ciPasswordHash: "$6$s$h" }, { ciSudo: true }])
    assert.equal(vmCreateBody({ ...base, ...f }).error?.field, "cloud_init.users[0].name");
});

test("the API's field names map back to the form's controls", () => {
  assert.equal(formKeyOfField("name"), "name");
  assert.equal(formKeyOfField("memory_mib"), "memoryMib");
  assert.equal(formKeyOfField("cloud_init.hostname"), "ciHostname");
  assert.equal(formKeyOfField("cloud_init.users[0].name"), "ciUser");
  assert.equal(formKeyOfField("cloud_init.users[0].ssh_authorized_keys[3]"), "ciKeys");
  assert.equal(formKeyOfField("cloud_init.users[0].ssh_authorized_keys"), "ciKeys");
  assert.equal(formKeyOfField("cloud_init.users[0].password_hash"), "ciPasswordHash");
  assert.equal(formKeyOfField("cloud_init.user_data"), "ciUserData");
  assert.equal(formKeyOfField("labels.tier"), "labels");
  assert.equal(formKeyOfField("node_selector"), "nodeSelector");
  assert.equal(formKeyOfField("disks[0].size_bytes"), "disk-0-size");
  assert.equal(formKeyOfField("cloud_init.users[1].name"), undefined);
  assert.equal(formKeyOfField("cloud_init.network[0].address"), undefined);
});

test("CD-ROM, boot order, firmware and CPU model in the create body", () => {
  const base = { ...EMPTY_FORM, name: "inst", disks: blank("8") };
  // an installer: an iso in the CD-ROM, boot from it then the disk, UEFI, a CPU model
  assert.deepEqual(vmCreateBody({ ...base, cdrom: "netinst", boot: "cdrom,disk", firmware: "uefi", cpuModel: "Westmere-v1" }).body, {
    name: "inst", vcpus: 1, memory_mib: 512, machine: "q35", vnc: true, start: true,
    disks: [{ name: "root", boot: true, size_bytes: 8 * 1024 ** 3 }], nics: [{ mode: "user" }],
    cdrom: "netinst", boot: ["cdrom", "disk"], firmware: "uefi", cpu_model: "Westmere-v1",
  });
  // defaults send none of them (the API's: empty drive, the boot disk, bios, the cluster's baseline)
  const plain = vmCreateBody(base).body;
  for (const k of ["cdrom", "boot", "firmware", "cpu_model"]) assert.equal(k in plain, false, k);
  assert.equal(vmCreateBody({ ...base, firmware: "bios" }).body.firmware, "bios");
  assert.equal("watchdog" in plain, false);
  assert.deepEqual(vmCreateBody({ ...base, watchdog: "reset" }).body.watchdog, { model: "i6300esb", action: "reset" });
  // the CD-ROM alone boots a VM with no disk
  assert.deepEqual(vmCreateBody({ ...EMPTY_FORM, name: "live", disks: [], cdrom: "live", boot: "cdrom" }).body.boot, ["cdrom"]);
  const err = (f) => vmCreateBody({ ...base, ...f }).error;
  assert.equal(err({ boot: "cdrom,disk" }).field, "boot");  // no iso in the drive
  assert.equal(vmCreateBody({ ...EMPTY_FORM, name: "x", disks: [], cdrom: "live", boot: "disk,cdrom" }).error.field, "boot");  // no disk
  assert.equal(vmCreateBody({ ...EMPTY_FORM, name: "x", disks: [], cdrom: "live" }).error.field, "disks");  // an iso alone boots nothing
  assert.equal(err({ cpuModel: "Has well" }).field, "cpu_model");
  // the API's fields map back to the controls
  assert.equal(formKeyOfField("cdrom"), "cdrom");
  assert.equal(formKeyOfField("boot[1]"), "boot");
  assert.equal(formKeyOfField("firmware"), "firmware");
  assert.equal(formKeyOfField("cpu_model"), "cpuModel");
});

test("any number of disks (blank or an image, each on a datastore or not) and NICs (user or bridge)", () => {
  const base = { ...EMPTY_FORM, name: "many" };
  const b = vmCreateBody({ ...base,
    disks: [disk({ image: "tiny-base", sizeGib: "2", datastore: "shared" }), disk({ sizeGib: "1" }), disk({ image: "tiny-base" }),
      disk({ sizeGib: "0.5", datastore: " nfs " })],
    nics: [{ mode: "bridge", bridge: " br0 " }, { mode: "user", bridge: "ignored", vlan: "7" }, { mode: "bridge", bridge: "vmbr1" },
      { mode: "bridge", bridge: "vmbr1", vlan: " 4094 " }, { mode: "bridge", bridge: "vmbr1", vlan: "" }],
  }).body;
  assert.deepEqual(b.disks, [
    { name: "root", boot: true, image: "tiny-base", size_bytes: 2 * 1024 ** 3, datastore: "shared" },
    { name: "data", size_bytes: 1024 ** 3 },
    { name: "data2", image: "tiny-base" },
    { name: "data3", size_bytes: 512 * 1024 ** 2, datastore: "nfs" },
  ]);
  assert.deepEqual(b.nics, [{ mode: "bridge", bridge: "br0" }, { mode: "user" }, { mode: "bridge", bridge: "vmbr1" },
    { mode: "bridge", bridge: "vmbr1", vlan: 4094 }, { mode: "bridge", bridge: "vmbr1" }]);
  assert.deepEqual([0, 1, 2, 5].map(diskName), ["root", "data", "data2", "data5"]);
  // a removed row is simply not there: no NIC sends no nics, the defaults send one user NIC
  assert.equal("nics" in vmCreateBody({ ...base, disks: blank("1"), nics: [] }).body, false);
  assert.deepEqual(vmCreateBody({ ...base, disks: blank("1") }).body.nics, [{ mode: "user" }]);
  // each problem names its own row
  const err = (f) => vmCreateBody({ ...base, disks: blank("1"), ...f }).error?.field;
  assert.equal(err({ disks: [disk({ image: "a" }), disk({ sizeGib: "0" })] }), "disks[1].size_bytes");
  assert.equal(err({ disks: [disk({ image: "a" }), disk({ image: "b" }), disk({})] }), "disks[2].size_bytes");
  assert.equal(err({ nics: [{ mode: "user", bridge: "" }, { mode: "bridge", bridge: "" }] }), "nics[1].bridge");
  assert.equal(err({ nics: [{ mode: "bridge", bridge: "a bridge" }] }), "nics[0].bridge");
  assert.equal(err({ nics: [{ mode: "bridge", bridge: "sixteen-chars-xx" }] }), "nics[0].bridge");
  for (const vlan of ["0", "4095", "10.5", "1e3", "-1", "x"])
    assert.equal(err({ nics: [{ mode: "bridge", bridge: "br0", vlan }] }), "nics[0].vlan", vlan);
  // the API's limits
  assert.equal(err({ disks: Array.from({ length: MAX_DISKS }, () => disk({ sizeGib: "1" })) }), undefined);
  assert.equal(err({ disks: Array.from({ length: MAX_DISKS + 1 }, () => disk({ sizeGib: "1" })) }), "disks");
  assert.equal(err({ nics: Array.from({ length: MAX_NICS + 1 }, () => ({ mode: "user", bridge: "" })) }), "nics");
  // the API's fields map back to each row's controls
  assert.equal(formKeyOfField("disks[3].size_bytes"), "disk-3-size");
  assert.equal(formKeyOfField("disks[12].datastore"), "disk-12-datastore");
  assert.equal(formKeyOfField("disks[1].image"), "disk-1-image");
  assert.equal(formKeyOfField("disks[1]"), "disk-1-image");
  assert.equal(formKeyOfField("disks"), "disks");
  assert.equal(formKeyOfField("nics[2].bridge"), "nic-2-bridge");
  assert.equal(formKeyOfField("nics[0].mode"), "nic-0-mode");
  assert.equal(formKeyOfField("nics[1].vlan"), "nic-1-vlan");
  assert.equal(formKeyOfField("nics"), "nics");
});
