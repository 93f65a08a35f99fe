// The inventory's own logic (unit-tested in test/unit): clusters and hosts -> the tree
// (cluster -> hosts; a host's VMs are read when it is opened), a cluster's baseline in words,
// and the checks the cluster forms make before asking the server.

export interface ClusterLike {
  name: string;
  cpu_baseline: string;
  cpu_model?: string | null;
  cpu_reason?: string;
  hosts?: number | unknown[];
}

export interface HostLike {
  name?: string;
  cluster?: string;
  state?: string;
  vms?: number;
}

export interface TreeCluster<H extends HostLike> {
  name: string;
  cluster: ClusterLike | undefined;  // undefined: a host names a cluster the list lacks
  hosts: H[];
}

// Every cluster with its hosts (by name), clusters by name with "default" first; a host
// whose cluster is not in the list (created meanwhile) still shows, under its name; a host
// with no cluster is in "default" (as the API treats it).
export function clusterTree<H extends HostLike>(clusters: ClusterLike[], hosts: H[]): TreeCluster<H>[] {
  const byName = new Map<string, TreeCluster<H>>();
  for (const c of clusters) byName.set(c.name, { name: c.name, cluster: c, hosts: [] });
  for (const h of hosts) {
    const name = h.cluster || "default";
    let node = byName.get(name);
    if (!node) byName.set(name, (node = { name, cluster: undefined, hosts: [] }));
    node.hosts.push(h);
  }
  const nodes = [...byName.values()];
  for (const n of nodes) n.hosts.sort((a, b) => (a.name ?? "").localeCompare(b.name ?? ""));
  return nodes.sort((a, b) => (a.name === "default" ? -1 : b.name === "default" ? 1 : a.name.localeCompare(b.name)));
}

// "auto: Westmere-v1" / "fixed: Haswell-v4" / "auto: none yet" — the setting and the model
// in force.
export function baselineLine(c: ClusterLike): string {
  const setting = c.cpu_baseline === "auto" || !c.cpu_baseline ? "auto" : "fixed";
  const model = c.cpu_model || (setting === "fixed" ? c.cpu_baseline : "");
  return `${setting}: ${model || "no model yet (no host reported its CPU models)"}`;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const CPU_MODEL = /^[A-Za-z0-9][-A-Za-z0-9_.]*$/;

export interface Invalid {
  field: string;
  message: string;
}

// The create-cluster form -> the body of POST /api/v1/clusters, or the field it lacks.
export function clusterCreateBody(name: string, baseline: string): { body?: { name: string; cpu_baseline: string }; error?: Invalid } {
  const n = name.trim();
  if (!n) return { error: { field: "name", message: "enter a name" } };
  if (n.length > 63 || !DNS_LABEL.test(n)) return { error: { field: "name", message: "lower-case letters, digits and '-', at most 63" } };
  const b = baselineValue(baseline);
  if (b.error) return { error: b.error };
  return { body: { name: n, cpu_baseline: b.value! } };
}

// The baseline field: empty or "auto" -> "auto", else a QEMU model name.
export function baselineValue(text: string): { value?: string; error?: Invalid } {
  const t = text.trim();
  if (!t || t === "auto") return { value: "auto" };
  if (t.length > 64 || !CPU_MODEL.test(t) || t === "host" || t === "max")
    return { error: { field: "cpu_baseline", message: "auto, or a named QEMU CPU model (Haswell-v4)" } };
  return { value: t };
}

// The hosts that can be moved into `cluster` (those of other clusters), by name.
export function hostsOutside<H extends HostLike>(hosts: H[], cluster: string): string[] {
  return hosts
    .filter((h) => (h.cluster || "default") !== cluster)
    .map((h) => h.name ?? "")
    .filter(Boolean)
    .sort();
}

// The page of an event's or task's target ("vm/web-1" -> "/vms/web-1"), or "" when it has
// none of its own.
export function targetHref(target: string): string {
  const slash = target.indexOf("/");
  if (slash <= 0 || slash === target.length - 1) return "";
  const kind = target.slice(0, slash), name = target.slice(slash + 1);
  const base: Record<string, string> = { vm: "/vms/", host: "/hosts/", cluster: "/clusters/" };
  return base[kind] ? base[kind] + encodeURIComponent(name) : "";
}

// The events page's filters: target on the server; action and actor (substrings) and the
// result (ok, or any failure) on the page shown.
export interface EventFilter {
  target: string;
  action: string;
  actor: string;
  result: string;  // "" any, "ok", "failed" (anything but ok)
}

export function eventMatches(e: { action?: string; actor?: string; result?: string }, f: EventFilter): boolean {
  if (f.action && !(e.action ?? "").includes(f.action)) return false;
  if (f.actor && !(e.actor ?? "").includes(f.actor)) return false;
  if (f.result === "ok" && e.result !== "ok") return false;
  if (f.result === "failed" && (e.result ?? "ok") === "ok") return false;
  return true;
}

// The global search box: "web" looks for names containing web; "tier=web" (or "tier=") for
// a label (key=value, or the key with any value).
export interface SearchTerm {
  name?: string;
  label?: { key: string; value?: string };
}

export function searchTerm(text: string): SearchTerm {
  const t = text.trim();
  if (!t) return {};
  const eq = t.indexOf("=");
  if (eq > 0) {
    const key = t.slice(0, eq).trim(), value = t.slice(eq + 1).trim();
    return { label: value ? { key, value } : { key } };
  }
  return { name: t.toLowerCase() };
}

// What the search page asks of GET /api/v1/hosts and GET /api/v1/images: a name part is
// their `name` filter (a case-insensitive substring matched in the store's query, so any host
// or image is found however long the list; images capped at SEARCH_IMAGES); a label is no
// filter of theirs, so then the whole host list and the first 1000 images are read and
// matched here (searchMatches).
export const SEARCH_IMAGES = 100;
export function searchListQueries(term: SearchTerm): { hosts: { name?: string }; images: { limit: number; name?: string } } {
  if (term.name) return { hosts: { name: term.name }, images: { name: term.name, limit: SEARCH_IMAGES } };
  return { hosts: {}, images: { limit: 1000 } };
}

export function searchMatches(item: { name?: string; labels?: Record<string, string> }, term: SearchTerm): boolean {
  if (term.name !== undefined) return (item.name ?? "").toLowerCase().includes(term.name);
  if (term.label) {
    const v = item.labels?.[term.label.key];
    return v !== undefined && (term.label.value === undefined || v === term.label.value);
  }
  return false;
}
