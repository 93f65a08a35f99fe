// The VM page's disks and NICs (hot-plug, disk resize; issue 12), their pure logic
// (unit-tested in test/unit/devices.test.mjs): sizes typed with units, the attach and resize
// bodies checked as the API checks them, and which actions a disk or NIC allows in the VM's
// state (a running VM loses only what sits on a hot-plug slot; the boot disk never leaves).
import type { components } from "./api/schema";
import type { Checked, FieldProblem } from "./backup-logic";

type S = components["schemas"];
export type Disk = S["Disk"];
export type Nic = S["Nic"];
export type DiskResize = S["DiskResize"];

// The API's limits (model/vm_spec.h: kMaxDiskBytes, kMaxDisks, kMaxNics).
export const MiB = 1024 ** 2;
export const GiB = 1024 ** 3;
export const TiB = 1024 ** 4;
export const MAX_DISK_BYTES = 64 * TiB;
export const MAX_DISKS = 16;
export const MAX_NICS = 8;

export const SIZE_UNITS = ["MiB", "GiB", "TiB"] as const;
export type SizeUnit = (typeof SIZE_UNITS)[number];
const UNIT_BYTES: Record<SizeUnit, number> = { MiB, GiB, TiB };

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

const bad = <T>(field: string, message: string): Checked<T> => ({ ok: false, problem: { field, message } });

// "20" with the unit chosen beside it, or a unit typed along ("512M", "1.5 GiB", "2t"), in
// bytes: whole MiB (a disk's size is a whole number of sectors, QEMU rounds nothing for us),
// 1 MiB to 64 TiB. `field` is the API's name of the value, for the problem.
export function sizeBytes(text: string, unit: SizeUnit, field: string): Checked<number> {
  const t = text.trim();
  if (!t) return bad(field, "enter a size");
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgt])(?:i?b)?)?$/i.exec(t);
  if (!m) return bad(field, "a number, in the unit chosen or with one (512M, 20G, 1.5T)");
  const suffix = (m[2] ?? "").toLowerCase();
  const mult = suffix === "k" ? 1024 : suffix === "m" ? MiB : suffix === "g" ? GiB : suffix === "t" ? TiB : UNIT_BYTES[unit];
  const bytes = Math.round((Number(m[1]) * mult) / MiB) * MiB;
  if (bytes < MiB) return bad(field, "at least 1 MiB");
  if (bytes > MAX_DISK_BYTES) return bad(field, "at most 64 TiB");
  return { ok: true, value: bytes };
}

// A size as the size box shows it: the largest unit it has at least one of, up to two
// decimals ("20" GiB, "1.5" TiB, "512" MiB).
export function sizeInput(bytes: number | undefined): { text: string; unit: SizeUnit } {
  if (!bytes || bytes <= 0) return { text: "", unit: "GiB" };
  const unit: SizeUnit = bytes >= TiB ? "TiB" : bytes >= GiB ? "GiB" : "MiB";
  return { text: String(Math.round((bytes / UNIT_BYTES[unit]) * 100) / 100), unit };
}

// The Attach disk form: a blank disk of a size, or an overlay of a catalog disk image
// (grown to the size when one is given).
export interface DiskForm {
  name: string;
  source: "blank" | "image";
  size: string;
  unit: SizeUnit;
  image: string;
  readonly: boolean;
  datastore: string;  // "": the host's own store; else a datastore the VM's host mounts
}
export const EMPTY_DISK_FORM: DiskForm = { name: "", source: "blank", size: "", unit: "GiB", image: "", readonly: false, datastore: "" };

// The body of POST /api/v1/vms/{name}/disks, or the first problem, named as the API names it
// ("disk.name", "disk.size_bytes", "disk.image"). `disks`: the VM's disks now.
export function diskAttachBody(f: DiskForm, disks: Disk[]): Checked<Disk> {
  const name = f.name.trim();
  if (!name) return bad("disk.name", "enter the disk's name");
  if (name.length > 63 || !NAME.test(name)) return bad("disk.name", "lower-case letters, digits and '-', at most 63");
  if (disks.some((d) => d.name === name)) return bad("disk.name", `the VM has a disk named ${name}`);
  if (disks.length >= MAX_DISKS) return bad("disk", `the VM has ${disks.length} disks, the most a VM can have`);
  const body: Disk = { name };
  if (f.source === "image") {
    const image = f.image.trim();
    if (!image) return bad("disk.image", "choose a disk image");
    body.image = image;
    if (f.size.trim()) {
      const size = sizeBytes(f.size, f.unit, "disk.size_bytes");
      if (!size.ok) return size;
      body.size_bytes = size.value;
    }
  } else {
    const size = sizeBytes(f.size, f.unit, "disk.size_bytes");
    if (!size.ok) return size;
    body.size_bytes = size.value;
  }
  if (f.readonly) body.readonly = true;
  if (f.datastore.trim()) body.datastore = f.datastore.trim();
  return { ok: true, value: body };
}

// The body of POST .../disks/{disk}/resize: grow only (the API's 400 for less), so more
// than the size the spec records when it records one (a disk on an image "as is" does not:
// the host checks its real size).
export function resizeBody(text: string, unit: SizeUnit, current: number | undefined): Checked<DiskResize> {
  const size = sizeBytes(text, unit, "size_bytes");
  if (!size.ok) return size;
  if (current && size.value <= current) {
    const now = sizeInput(current);
    return bad("size_bytes", `disks only grow: more than ${now.text} ${now.unit}`);
  }
  return { ok: true, value: { size_bytes: size.value } };
}

// The Attach NIC form: user-mode networking, or a Linux bridge of the host; the MAC is the
// manager's choice when left empty.
export interface NicForm {
  mode: "user" | "bridge";
  bridge: string;
  mac: string;
}
export const EMPTY_NIC_FORM: NicForm = { mode: "user", bridge: "", mac: "" };

// A MAC as the API takes it: six pairs of hex digits, ':' between ("-" accepted and turned
// into ':'), lower case, unicast and locally administered (52:54:00:... is QEMU's).
export function macProblem(mac: string): string {
  if (!MAC.test(mac)) return "xx:xx:xx:xx:xx:xx, hex digits";
  const first = parseInt(mac.slice(0, 2), 16);
  if (first & 1) return "a multicast address cannot be a NIC's";
  if (!(first & 2)) return "a locally administered address (52:54:00:xx:xx:xx)";
  return "";
}

export function nicAttachBody(f: NicForm, nics: Nic[]): Checked<Nic> {
  if (nics.length >= MAX_NICS) return bad("nic", `the VM has ${nics.length} NICs, the most a VM can have`);
  const body: Nic = { mode: f.mode };
  if (f.mode === "bridge") {
    const bridge = f.bridge.trim();
    if (!bridge) return bad("nic.bridge", "enter the host's bridge (br0)");
    if (!IFNAME.test(bridge) || bridge === "." || bridge === "..")
      return bad("nic.bridge", "an interface name: letters, digits, '_', '.', '-', at most 15");
    body.bridge = bridge;
  }
  const mac = f.mac.trim().toLowerCase().replace(/-/g, ":");
  if (mac) {
    const why = macProblem(mac);
    if (why) return bad("nic.mac", why);
    if (nics.some((n) => (n.mac ?? "").toLowerCase() === mac)) return bad("nic.mac", `the VM has a NIC with MAC ${mac}`);
    body.mac = mac;
  }
  return { ok: true, value: body };
}

// An action a row offers: allowed, or why not (the disabled button's tooltip).
export interface Allowed {
  ok: boolean;
  why: string;
}
const yes: Allowed = { ok: true, why: "" };
const no = (why: string): Allowed => ({ ok: false, why });

// The VM as these rules read it (a Vm of the API).
export interface VmLike {
  host?: string;
  deletion_requested?: boolean;
  spec?: unknown;
  status?: { state?: string; migration?: unknown } | null;
}

// Its QEMU runs (or may: starting, shutting down): a device placed at boot stays until it
// is off. A VM on no host changes on paper only.
export function qemuRuns(vm: VmLike): boolean {
  if (!vm.host) return false;
  const s = vm.status?.state ?? "";
  return s === "running" || s === "paused" || s === "starting" || s === "shutting_down";
}

// What refuses every change of the VM's devices (the API's 409).
function vmBlocks(vm: VmLike): Allowed {
  if (vm.deletion_requested) return no("the VM is being deleted");
  if (vm.status?.migration) return no("the VM is migrating: change its devices once it has moved");
  return yes;
}

function detachable(vm: VmLike, slot: number | undefined, what: string): Allowed {
  if (qemuRuns(vm) && !slot)
    return no(`the ${what} was placed when the VM started (not on a hot-plug slot): detach it while the VM is off`);
  return yes;
}

export function diskActions(vm: VmLike, d: Disk): { resize: Allowed; detach: Allowed } {
  const blocked = vmBlocks(vm);
  if (!blocked.ok) return { resize: blocked, detach: blocked };
  return {
    resize: d.readonly ? no("a read-only disk cannot be resized") : yes,
    detach: d.boot ? no("the boot disk cannot be detached") : detachable(vm, d.hotplug_slot, "disk"),
  };
}

export function nicActions(vm: VmLike, n: Nic): { detach: Allowed } {
  const blocked = vmBlocks(vm);
  return { detach: blocked.ok ? detachable(vm, n.hotplug_slot, "NIC") : blocked };
}

// An attached device takes a hot-plug slot, running or not: a spare PCIe root port, which
// only q35 VMs have (an i440fx one is refused, naming its machine).
export function canAttach(vm: VmLike, kind: "disk" | "nic", count: number): Allowed {
  const blocked = vmBlocks(vm);
  if (!blocked.ok) return blocked;
  const m = (vm.spec as { machine?: unknown } | null | undefined)?.machine;
  const machine = typeof m === "string" ? m : "";
  if (machine === "pc" || machine.startsWith("pc-i440fx"))
    return no(`an i440fx VM (machine ${machine}) has no hot-plug slots: devices are set when it is created`);
  if (kind === "disk" && count >= MAX_DISKS) return no(`the VM has ${count} disks, the most a VM can have`);
  if (kind === "nic" && count >= MAX_NICS) return no(`the VM has ${count} NICs, the most a VM can have`);
  return yes;
}

// Where a device sits: "boot-time" (on the root bus from the VM's start) or its hot-plug slot.
export function slotText(slot: number | undefined): string {
  return slot ? String(slot) : "boot-time";
}

// The spec's disks and NICs (the Vm schema leaves spec open): only well-formed entries.
export function specDisks(spec: unknown): Disk[] {
  const list = (spec as { disks?: unknown } | null | undefined)?.disks;
  return Array.isArray(list) ? list.filter((d): d is Disk => !!d && typeof d === "object" && typeof (d as Disk).name === "string") : [];
}
export function specNics(spec: unknown): Nic[] {
  const list = (spec as { nics?: unknown } | null | undefined)?.nics;
  return Array.isArray(list) ? list.filter((n): n is Nic => !!n && typeof n === "object" && typeof (n as Nic).mode === "string") : [];
}

// The control a field the API named belongs to: "disk.base_image" (the spec's name) is the
// image box; others ("disk.hotplug_slot", "disk") no box's: shown by the button.
export function deviceProblem(p: FieldProblem): FieldProblem {
  return p.field === "disk.base_image" ? { ...p, field: "disk.image" } : p;
}
