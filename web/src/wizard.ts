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
  vnc: boolean;  // a graphical console (false: QEMU gets no VNC display)
  start: boolean;
}

export const EMPTY_FORM: WizardForm = {
  name: "", vcpus: "1", memoryMib: "512", image: "", diskGib: "", kernel: "", initrd: "",
  cmdline: "", labels: "", nodeSelector: "", host: "", nic: true, vnc: true, start: true,
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
  if (!kernel && !body.disks)
    return { error: { field: "disks", message: "choose a disk image, a blank disk size or a kernel to boot" } };
  if (f.nic) body.nics = [{ mode: "user" }];
  const labels = parsePairs(f.labels, "labels");
  if (labels.error) return { error: labels.error };
  if (Object.keys(labels.pairs).length) body.labels = labels.pairs;
  const selector = parsePairs(f.nodeSelector, "node_selector");
  if (selector.error) return { error: selector.error };
  if (Object.keys(selector.pairs).length) body.node_selector = selector.pairs;
  if (f.host.trim()) body.host = f.host.trim();
  return { body };
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
