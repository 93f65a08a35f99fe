// The create wizard's own logic (unit-tested in test/unit): the form's text fields -> the
// body of POST /api/v1/vms (and of the dry run POST /api/v1/placement), and the
// scheduler's answer -> one row per host ("why this host, why not the others").
import type { Schemas } from "./api/client";

export type VmCreate = Schemas["VmCreate"];
export type PlacementPreview = Schemas["PlacementPreview"];

export interface WizardForm {
  name: string;
  vcpus: string;
  memoryMib: string;
  image: string;  // catalog disk image for the root disk ("" = blank disk)
  diskGib: string;  // blank disk size, or grow the image's overlay to it ("" = as is)
  kernel: string;  // direct boot (catalog kernel image), optional
  initrd: string;
  cmdline: string;
  labels: string;  // "k=v, k2=v2"
  nodeSelector: string;  // same form
  host: string;  // "" = the scheduler chooses
  nic: boolean;  // one user-mode NIC
  bridge: string;  // a NIC on this host bridge too ("" = none)
  dataGib: string;  // a second, blank disk of this size ("" = none)
  vnc: boolean;  // a graphical console (false: QEMU gets no VNC display)
  cdrom: string;  // catalog iso image in the CD-ROM ("" = empty drive)
  boot: BootOrder;  // firmware boot order
  firmware: "" | "bios" | "uefi";  // "" = the API's default (bios)
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
  name: "", vcpus: "1", memoryMib: "512", image: "", diskGib: "", kernel: "", initrd: "",
  cmdline: "", labels: "", nodeSelector: "", host: "", nic: true, vnc: true, start: true,
  cdrom: "", boot: "", firmware: "", cpuModel: "", bridge: "", dataGib: "",
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
  const image = f.image.trim();
  let sizeBytes: number | undefined;
  if (f.diskGib.trim()) {
    const gib = Number(f.diskGib.trim());
    if (!Number.isFinite(gib) || gib <= 0 || gib > 65536)
      return { error: { field: "disks[0].size_bytes", message: "disk size in GiB, more than 0" } };
    sizeBytes = Math.round(gib * 1024 ** 3);
  }
  if (image || sizeBytes !== undefined) {
    const disk: NonNullable<VmCreate["disks"]>[number] = { name: "root", boot: true };
    if (image) disk.image = image;
    if (sizeBytes !== undefined) disk.size_bytes = sizeBytes;
    body.disks = [disk];
  }
  if (f.dataGib.trim()) {
    const gib = Number(f.dataGib.trim());
    const at = body.disks ? body.disks.length : 0;
    if (!Number.isFinite(gib) || gib <= 0 || gib > 65536)
      return { error: { field: `disks[${at}].size_bytes`, message: "data disk size in GiB, more than 0" } };
    body.disks = [...(body.disks ?? []), { name: "data", size_bytes: Math.round(gib * 1024 ** 3) }];
  }
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
  const cpu = f.cpuModel.trim();
  if (cpu) {
    if (!/^[A-Za-z0-9][-A-Za-z0-9_.]*$/.test(cpu) || cpu.length > 64)
      return { error: { field: "cpu_model", message: "a QEMU CPU model (Haswell-v4), host or max" } };
    body.cpu_model = cpu;
  }
  if (f.nic) body.nics = [{ mode: "user" }];
  const bridge = f.bridge.trim();
  if (bridge) {
    if (!/^[A-Za-z0-9][-A-Za-z0-9_.]{0,14}$/.test(bridge))
      return { error: { field: `nics[${body.nics?.length ?? 0}].bridge`, message: "a Linux bridge name (up to 15 characters)" } };
    body.nics = [...(body.nics ?? []), { mode: "bridge", bridge }];
  }
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

// The form control for a field the API named in a 400 (or vmCreateBody did), if the form
// has one: "cloud_init.users[0].ssh_authorized_keys[2]" -> ciKeys.
export function formKeyOfField(field: string): keyof WizardForm | undefined {
  const exact: Record<string, keyof WizardForm> = {
    name: "name", vcpus: "vcpus", memory_mib: "memoryMib", host: "host", disks: "image",
    "disks[0].image": "image", "disks[0].size_bytes": "diskGib", kernel: "kernel", initrd: "initrd",
    cmdline: "cmdline", "cloud_init.hostname": "ciHostname", "cloud_init.users": "ciUser",
    "cloud_init.users[0].name": "ciUser", "cloud_init.users[0].password_hash": "ciPasswordHash",
    "cloud_init.user_data": "ciUserData", cdrom: "cdrom", boot: "boot", firmware: "firmware",
    cpu_model: "cpuModel",
  };
  if (field in exact) return exact[field];
  if (/^cloud_init\.users\[0\]\.ssh_authorized_keys(\[\d+\])?$/.test(field)) return "ciKeys";
  if (/^boot\[\d+\]$/.test(field)) return "boot";
  if (/^disks\[[1-9]\]\./.test(field)) return "dataGib";
  if (/^nics\[\d+\]\.bridge$/.test(field)) return "bridge";
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
