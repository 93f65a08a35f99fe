// The create wizard's own logic (unit-tested in test/unit): the form's text fields -> the
// body of POST /api/v1/vms (and of the dry run POST /api/v1/placement), and the
// scheduler's answer -> one row per host ("why this host, why not the others").
import type { Schemas } from "./api/client";

export type VmCreate = Schemas["VmCreate"];
export type WatchdogAction = NonNullable<Schemas["Watchdog"]["action"]>;
export type PlacementPreview = Schemas["PlacementPreview"];

export interface WizardForm {
  name: string;
  vcpus: string;
  memoryMib: string;
  disks: DiskRow[];  // the first is the boot disk ("root"), then "data", "data2", ...
  kernel: string;  // direct boot (catalog kernel image), optional
  initrd: string;
  cmdline: string;
  labels: string;  // "k=v, k2=v2"
  nodeSelector: string;  // same form
  host: string;  // "" = the scheduler chooses
  nics: NicRow[];
  vnc: boolean;  // a graphical console (false: QEMU gets no VNC display)
  cdrom: string;  // catalog iso image in the CD-ROM ("" = empty drive)
  boot: BootOrder;  // firmware boot order
  firmware: "" | "bios" | "uefi";  // "" = the API's default (bios)
  watchdog: "" | WatchdogAction;  // "" = no watchdog; else QEMU's action when it expires
  cpuModel: string;  // "" = the cluster's CPU baseline; "host", "max" or a QEMU model
  start: boolean;
  // cloud-init (NoCloud seed disk; docs/internals/cloud-init.md). A password is taken as a
  // crypt(3) hash only, as the API does: the browser hashes nothing.
  ciHostname: string;  // "" = the VM name
  ciUser: string;  // one user, or "" for none
  ciKeys: string;  // OpenSSH public keys, one a line
  ciPasswordHash: string;
  ciSudo: boolean;
  ciUserData: string;  // "#cloud-config\n..." or "#!..."
}

// One disk of the form: a catalog disk image ("" = blank), its size in GiB (a blank disk's
// size, or grow the image's overlay to it; "" = the image as is) and the datastore holding it
// ("" = the host's own image store).
export interface DiskRow {
  image: string;
  sizeGib: string;
  datastore: string;
}

// One NIC: user-mode (QEMU's slirp) or on a Linux bridge of the host, optionally on an 802.1Q
// VLAN of that bridge ("" or absent = none).
export interface NicRow {
  mode: "user" | "bridge";
  bridge: string;
  vlan?: string;
}

// The API's limits (VmCreate.disks maxItems, VmCreate.nics maxItems).
export const MAX_DISKS = 16;
export const MAX_NICS = 8;
export const BLANK_DISK: DiskRow = { image: "", sizeGib: "", datastore: "" };
export const USER_NIC: NicRow = { mode: "user", bridge: "" };

// The name the API gets for the i-th disk of the form.
export function diskName(i: number): string {
  return i === 0 ? "root" : i === 1 ? "data" : `data${i}`;
}

// The boot orders the form offers ("" = the boot disk only, the API's default).
export const BOOT_ORDERS = ["", "cdrom,disk", "disk,cdrom", "cdrom"] as const;
export type BootOrder = (typeof BOOT_ORDERS)[number];
export const BOOT_LABEL: Record<BootOrder, string> = {
  "": "the boot disk",
  "cdrom,disk": "CD-ROM, then the boot disk",
  "disk,cdrom": "the boot disk, then CD-ROM",
  cdrom: "CD-ROM only",
};

export const EMPTY_FORM: WizardForm = {
  name: "", vcpus: "1", memoryMib: "512", disks: [BLANK_DISK], kernel: "", initrd: "",
  cmdline: "", labels: "", nodeSelector: "", host: "", nics: [USER_NIC], vnc: true, start: true,
  cdrom: "", boot: "", firmware: "", watchdog: "", cpuModel: "",
  ciHostname: "", ciUser: "", ciKeys: "", ciPasswordHash: "", ciSudo: false, ciUserData: "",
};

export interface Invalid {
  field: string;
  message: string;
}

const KEY = /^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$/;

// "a=1, b=2" (commas or new lines) -> {a: "1", b: "2"}; a pair without "=" or a repeated
// key is an error naming the field.
export function parsePairs(text: string, field: string): { pairs: Record<string, string>; error?: Invalid } {
  const pairs: Record<string, string> = {};
  for (const raw of text.split(/[,\n]/)) {
    const item = raw.trim();
    if (!item) continue;
    const eq = item.indexOf("=");
    const key = eq > 0 ? item.slice(0, eq).trim() : "";
    if (!key || !KEY.test(key)) return { pairs, error: { field, message: `"${item}" is not key=value` } };
    if (key in pairs) return { pairs, error: { field, message: `${key} is given twice` } };
    pairs[key] = item.slice(eq + 1).trim();
  }
  return { pairs };
}

function wholeNumber(text: string): number | undefined {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return undefined;
  return Number(t);
}

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// The create body for the form, or the first problem (checked here so the wizard says it
// before asking the server; the server checks everything again).
export function vmCreateBody(f: WizardForm): { body?: VmCreate; error?: Invalid } {
  const name = f.name.trim();
  if (!name) return { error: { field: "name", message: "enter a name" } };
  if (name.length > 63 || !NAME.test(name))
    return { error: { field: "name", message: "lower-case letters, digits and '-', at most 63" } };
  const vcpus = wholeNumber(f.vcpus);
  if (vcpus === undefined || vcpus < 1) return { error: { field: "vcpus", message: "at least 1 vCPU" } };
  const memory = wholeNumber(f.memoryMib);
  if (memory === undefined || memory < 16) return { error: { field: "memory_mib", message: "at least 16 MiB" } };
  const body: VmCreate = { name, vcpus, memory_mib: memory, machine: "q35", vnc: f.vnc, start: f.start };
  const kernel = f.kernel.trim();
  if (kernel) {
    body.kernel = kernel;
    if (f.initrd.trim()) body.initrd = f.initrd.trim();
    if (f.cmdline.trim()) body.cmdline = f.cmdline.trim();
  }
  if (f.disks.length > MAX_DISKS) return { error: { field: "disks", message: `at most ${MAX_DISKS} disks` } };
  const disks: NonNullable<VmCreate["disks"]> = [];
  for (const [i, row] of f.disks.entries()) {
    const disk: NonNullable<VmCreate["disks"]>[number] = { name: diskName(i) };
    if (i === 0) disk.boot = true;
    const image = row.image.trim();
    if (image) disk.image = image;
    const size = row.sizeGib.trim();
    if (size) {
      const gib = Number(size);
      if (!Number.isFinite(gib) || gib <= 0 || gib > 65536)
        return { error: { field: `disks[${i}].size_bytes`, message: "size in GiB, more than 0" } };
      disk.size_bytes = Math.round(gib * 1024 ** 3);
    } else if (!image) {
      return { error: { field: `disks[${i}].size_bytes`, message: "a blank disk needs its size in GiB (or choose an image)" } };
    }
    if (row.datastore.trim()) disk.datastore = row.datastore.trim();
    disks.push(disk);
  }
  if (disks.length) body.disks = disks;
  const cdrom = f.cdrom.trim();
  if (cdrom) body.cdrom = cdrom;
  if (f.boot) {
    // What the form alone can say; the server checks the rest (e.g. boot with a kernel).
    if (f.boot.includes("cdrom") && !cdrom)
      return { error: { field: "boot", message: "booting from the CD-ROM needs an ISO image in it" } };
    if (f.boot.includes("disk") && !body.disks)
      return { error: { field: "boot", message: "booting from the disk needs a disk image or a blank disk" } };
    body.boot = f.boot.split(",") as NonNullable<VmCreate["boot"]>;
  }
  if (!kernel && !body.disks && !(cdrom && f.boot.includes("cdrom")))
    return { error: { field: "disks", message: "choose a disk image, a blank disk size, a kernel or a CD-ROM to boot" } };
  if (f.firmware) body.firmware = f.firmware;
  if (f.watchdog) body.watchdog = { model: "i6300esb", action: f.watchdog };
  const cpu = f.cpuModel.trim();
  if (cpu) {
    if (!/^[A-Za-z0-9][-A-Za-z0-9_.]*$/.test(cpu) || cpu.length > 64)
      return { error: { field: "cpu_model", message: "a QEMU CPU model (Haswell-v4), host or max" } };
    body.cpu_model = cpu;
  }
  if (f.nics.length > MAX_NICS) return { error: { field: "nics", message: `at most ${MAX_NICS} NICs` } };
  const nics: NonNullable<VmCreate["nics"]> = [];
  for (const [i, row] of f.nics.entries()) {
    if (row.mode === "user") {
      nics.push({ mode: "user" });
      continue;
    }
    const bridge = row.bridge.trim();
    if (!/^[A-Za-z0-9][-A-Za-z0-9_.]{0,14}$/.test(bridge))
      return { error: { field: `nics[${i}].bridge`, message: "a Linux bridge name (up to 15 characters)" } };
    const vlan = (row.vlan ?? "").trim();
    if (!vlan) {
      nics.push({ mode: "bridge", bridge });
      continue;
    }
    if (!/^[0-9]{1,4}$/.test(vlan) || Number(vlan) < 1 || Number(vlan) > 4094)
      return { error: { field: `nics[${i}].vlan`, message: "a VLAN id, 1..4094 (empty: no VLAN)" } };
    nics.push({ mode: "bridge", bridge, vlan: Number(vlan) });
  }
  if (nics.length) body.nics = nics;
  const labels = parsePairs(f.labels, "labels");
  if (labels.error) return { error: labels.error };
  if (Object.keys(labels.pairs).length) body.labels = labels.pairs;
  const selector = parsePairs(f.nodeSelector, "node_selector");
  if (selector.error) return { error: selector.error };
  if (Object.keys(selector.pairs).length) body.node_selector = selector.pairs;
  if (f.host.trim()) body.host = f.host.trim();
  const ci = cloudInit(f);
  if (ci.error) return { error: ci.error };
  if (ci.value) body.cloud_init = ci.value;
  return { body };
}

// The form's cloud-init fields -> `cloud_init` (undefined when all are empty). Only what the
// form can say alone is checked here (keys or a password need a user); the server checks
// every value and names the field (cloudInitFormKey maps it back).
function cloudInit(f: WizardForm): { value?: NonNullable<VmCreate["cloud_init"]>; error?: Invalid } {
  const value: NonNullable<VmCreate["cloud_init"]> = {};
  if (f.ciHostname.trim()) value.hostname = f.ciHostname.trim();
  const user = f.ciUser.trim();
  const keys = f.ciKeys.split("\n").map((k) => k.trim()).filter(Boolean);
  const hash = f.ciPasswordHash.trim();
  if (!user && (keys.length || hash || f.ciSudo))
    return { error: { field: "cloud_init.users[0].name", message: "enter the user the keys, password or sudo are for" } };
  if (user) {
    const u: NonNullable<typeof value.users>[number] = { name: user, sudo: f.ciSudo };
    if (keys.length) u.ssh_authorized_keys = keys;
    if (hash) u.password_hash = hash;
    value.users = [u];
  }
  // Sent as typed (new lines normalized): the server wants "#cloud-config" as a whole line.
  const userData = f.ciUserData.replace(/\r\n/g, "\n");
  if (userData.trim()) value.user_data = userData;
  return Object.keys(value).length ? { value } : {};
}

// A control of the form: a scalar field, or one row's control ("disk-1-size", "nic-0-bridge");
// "disks" and "nics" are the lists themselves (their "Add" buttons).
export type FormKey = keyof WizardForm | `disk-${number}-${"image" | "size" | "datastore"}` | `nic-${number}-${"mode" | "bridge" | "vlan"}`;

// The form control for a field the API named in a 400 (or vmCreateBody did), if the form
// has one: "cloud_init.users[0].ssh_authorized_keys[2]" -> ciKeys, "disks[2].datastore" ->
// disk-2-datastore.
export function formKeyOfField(field: string): FormKey | undefined {
  const exact: Record<string, keyof WizardForm> = {
    name: "name", vcpus: "vcpus", memory_mib: "memoryMib", host: "host", disks: "disks", nics: "nics",
    kernel: "kernel", initrd: "initrd",
    cmdline: "cmdline", "cloud_init.hostname": "ciHostname", "cloud_init.users": "ciUser",
    "cloud_init.users[0].name": "ciUser", "cloud_init.users[0].password_hash": "ciPasswordHash",
    "cloud_init.user_data": "ciUserData", cdrom: "cdrom", boot: "boot", firmware: "firmware",
    watchdog: "watchdog", "watchdog.action": "watchdog",
    cpu_model: "cpuModel",
  };
  if (field in exact) return exact[field];
  if (/^cloud_init\.users\[0\]\.ssh_authorized_keys(\[\d+\])?$/.test(field)) return "ciKeys";
  if (/^boot\[\d+\]$/.test(field)) return "boot";
  const disk = /^disks\[(\d+)\](?:\.(\w+))?$/.exec(field);
  if (disk) {
    const part = disk[2] === "size_bytes" ? "size" : disk[2] === "datastore" || disk[2] === "datastore_id" ? "datastore" : "image";
    return `disk-${Number(disk[1])}-${part}`;
  }
  const nic = /^nics\[(\d+)\](?:\.(\w+))?$/.exec(field);
  if (nic) return `nic-${Number(nic[1])}-${nic[2] === "bridge" || nic[2] === "vlan" ? nic[2] : "mode"}`;
  if (field === "labels" || field.startsWith("labels.")) return "labels";
  if (field === "node_selector" || field.startsWith("node_selector.")) return "nodeSelector";
  return undefined;
}

export interface PlacementRow {
  host: string;
  verdict: "chosen" | "fits" | "refused";
  why: string;
}

// Chosen host first, then the other hosts that fit (lower score), then every refused host
// with the filter and its reason.
export function placementRows(p: PlacementPreview): PlacementRow[] {
  const rows: PlacementRow[] = [];
  p.candidates.forEach((c, i) => {
    const score = `score ${c.score.toFixed(1)}`;
    rows.push(i === 0
      ? { host: c.host, verdict: "chosen", why: `passes every filter, best ${score}` }
      : { host: c.host, verdict: "fits", why: `fits, lower ${score}` });
  });
  for (const r of p.rejected) rows.push({ host: r.host, verdict: "refused", why: `${r.filter}: ${r.reason}` });
  return rows;
}

// One line for the top of the explanation.
export function placementHeadline(p: PlacementPreview): string {
  if (p.fits && p.host) {
    const others = p.hosts - 1;
    return others > 0 ? `Goes to ${p.host} (best of ${p.candidates.length} fitting, ${p.rejected.length} refused)` : `Goes to ${p.host}`;
  }
  if (p.hosts === 0) return p.summary || "No hosts are enrolled";
  return `No host fits: ${p.summary}`;
}
