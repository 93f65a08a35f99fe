// The images and tokens pages' own logic (unit-tested in test/unit): checking an upload
// before it starts, its URL, the answer of an image delete per host, token lifetimes.

export type ImageKind = "disk" | "kernel" | "initrd" | "iso";
const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

// An image or token name as the API wants it (DNS label); the problem otherwise.
export function nameProblem(name: string): string {
  if (!name) return "enter a name";
  if (name.length > 63 || !NAME.test(name)) return "lower-case letters, digits and '-', at most 63";
  return "";
}

// A file's name -> a suggested image name ("Tiny Base.qcow2" -> "tiny-base").
export function suggestImageName(file: string): string {
  return file
    .replace(/\.(qcow2|raw|img|iso|gz|xz)$/i, "")
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63)
    .replace(/-+$/g, "");
}

export function uploadUrl(name: string, kind: ImageKind): string {
  return `/api/v1/images?name=${encodeURIComponent(name)}&kind=${kind}`;
}

export interface HostOutcome {
  host?: string;
  outcome?: string;
  message?: string;
}

// "removed from h1, h2; kept on h3 (a VM disk is an overlay on it); h4 unreachable (its
// copy stays)"; "" when no host had a copy.
export function deleteOutcome(hosts: HostOutcome[] | undefined): string {
  const by = (o: string) => (hosts ?? []).filter((h) => h.outcome === o).map((h) => h.host ?? "?");
  const parts: string[] = [];
  const removed = by("removed");
  const kept = by("kept");
  const unreachable = by("unreachable");
  if (removed.length) parts.push(`removed from ${removed.join(", ")}`);
  if (kept.length) parts.push(`kept on ${kept.join(", ")} (a VM disk is an overlay on it)`);
  if (unreachable.length) parts.push(`${unreachable.join(", ")} unreachable (its copy stays)`);
  return parts.join("; ");
}

// "", "3600", "1h", "7d", "30m" -> seconds (undefined: never expires); null when unreadable.
export function ttlSeconds(text: string): number | undefined | null {
  const t = text.trim().toLowerCase();
  if (!t) return undefined;
  const m = /^(\d+)\s*([smhd]?)$/.exec(t);
  if (!m) return null;
  const n = Number(m[1]);
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "" | "s" | "m" | "h" | "d"];
  return n > 0 ? n * unit : null;
}
