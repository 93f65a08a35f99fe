// Unit tests of the inventory's logic (src/inventory.ts): the cluster -> hosts tree, the
// baseline in words, the cluster forms' checks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { baselineLine, baselineValue, clusterCreateBody, clusterTree, hostsOutside } from "../../build-unit/inventory.js";

test("tree: every cluster with its hosts, default first, hosts by name", () => {
  const clusters = [{ name: "rack-b", cpu_baseline: "auto" }, { name: "default", cpu_baseline: "auto" }, { name: "empty", cpu_baseline: "Haswell-v4" }];
  const hosts = [{ name: "h3", cluster: "rack-b" }, { name: "h2" }, { name: "h1", cluster: "default" }, { name: "h9", cluster: "new" }];
  const tree = clusterTree(clusters, hosts);
  assert.deepEqual(tree.map((c) => [c.name, c.hosts.map((h) => h.name)]),
    [["default", ["h1", "h2"]], ["empty", []], ["new", ["h9"]], ["rack-b", ["h3"]]]);
  // a cluster the list lacks (created after it was read) has no record, its host shows anyway
  assert.equal(tree.find((c) => c.name === "new").cluster, undefined);
  assert.equal(tree.find((c) => c.name === "empty").cluster.cpu_baseline, "Haswell-v4");
  assert.deepEqual(clusterTree([], []), []);
});

test("baseline in words: the setting and the model in force", () => {
  assert.equal(baselineLine({ name: "a", cpu_baseline: "auto", cpu_model: "Westmere-v1" }), "auto: Westmere-v1");
  assert.equal(baselineLine({ name: "a", cpu_baseline: "Haswell-v4", cpu_model: "Haswell-v4" }), "fixed: Haswell-v4");
  assert.match(baselineLine({ name: "a", cpu_baseline: "auto", cpu_model: null }), /^auto: no model yet/);
  assert.equal(baselineLine({ name: "a", cpu_baseline: "Haswell-v4", cpu_model: null }), "fixed: Haswell-v4");
});

test("cluster forms: name and baseline checked, auto by default", () => {
  assert.deepEqual(clusterCreateBody(" rack-a ", ""), { body: { name: "rack-a", cpu_baseline: "auto" } });
  assert.deepEqual(clusterCreateBody("rack-a", "Haswell-v4").body, { name: "rack-a", cpu_baseline: "Haswell-v4" });
  assert.equal(clusterCreateBody("", "auto").error.field, "name");
  assert.equal(clusterCreateBody("Rack_A", "auto").error.field, "name");
  assert.equal(clusterCreateBody("r", "Has well").error.field, "cpu_baseline");
  assert.equal(baselineValue("host").error.field, "cpu_baseline");  // not a model every host can offer
  assert.equal(baselineValue(" auto ").value, "auto");
});

test("hosts that can move into a cluster: those of the others", () => {
  const hosts = [{ name: "b", cluster: "x" }, { name: "a" }, { name: "c", cluster: "default" }];
  assert.deepEqual(hostsOutside(hosts, "x"), ["a", "c"]);
  assert.deepEqual(hostsOutside(hosts, "default"), ["b"]);
});

test("targets link to their pages; the events page's filters", async () => {
  const { targetHref, eventMatches } = await import("../../build-unit/inventory.js");
  assert.equal(targetHref("vm/web-1"), "/vms/web-1");
  assert.equal(targetHref("host/h1"), "/hosts/h1");
  assert.equal(targetHref("cluster/rack-a"), "/clusters/rack-a");
  assert.equal(targetHref("token/t"), "");
  assert.equal(targetHref("vm/"), "");
  assert.equal(targetHref("nothing"), "");
  const e = { action: "vm.start", actor: "admin", result: "ok" };
  const f = { target: "", action: "", actor: "", result: "" };
  assert.equal(eventMatches(e, f), true);
  assert.equal(eventMatches(e, { ...f, action: "vm." }), true);
  assert.equal(eventMatches(e, { ...f, action: "host." }), false);
  assert.equal(eventMatches(e, { ...f, actor: "agent:" }), false);
  assert.equal(eventMatches(e, { ...f, result: "failed" }), false);
  assert.equal(eventMatches({ ...e, result: "permission_denied" }, { ...f, result: "failed" }), true);
  assert.equal(eventMatches({ ...e, result: "permission_denied" }, { ...f, result: "ok" }), false);
});

test("global search: a name part, or a label (key=value, key=)", async () => {
  const { searchTerm, searchMatches } = await import("../../build-unit/inventory.js");
  assert.deepEqual(searchTerm(" Web "), { name: "web" });
  assert.deepEqual(searchTerm("tier=web"), { label: { key: "tier", value: "web" } });
  assert.deepEqual(searchTerm("tier="), { label: { key: "tier" } });
  assert.deepEqual(searchTerm(""), {});
  const vm = { name: "web-1", labels: { tier: "web" } };
  assert.equal(searchMatches(vm, searchTerm("WEB")), true);
  assert.equal(searchMatches(vm, searchTerm("db")), false);
  assert.equal(searchMatches(vm, searchTerm("tier=web")), true);
  assert.equal(searchMatches(vm, searchTerm("tier=db")), false);
  assert.equal(searchMatches(vm, searchTerm("tier=")), true);
  assert.equal(searchMatches({ name: "h1" }, searchTerm("tier=")), false);
  assert.equal(searchMatches(vm, {}), false);
});

test("global search: a name part asks the host and image lists' name filter, a label reads the lists", async () => {
  const { searchTerm, searchListQueries, SEARCH_IMAGES } = await import("../../build-unit/inventory.js");
  assert.deepEqual(searchListQueries(searchTerm(" Tiny- ")), { hosts: { name: "tiny-" }, images: { name: "tiny-", limit: SEARCH_IMAGES } });
  assert.deepEqual(searchListQueries(searchTerm("tier=web")), { hosts: {}, images: { limit: 1000 } });
  assert.deepEqual(searchListQueries(searchTerm("tier=")), { hosts: {}, images: { limit: 1000 } });
  assert.deepEqual(searchListQueries(searchTerm("")), { hosts: {}, images: { limit: 1000 } });
  assert.ok(SEARCH_IMAGES > 0 && SEARCH_IMAGES <= 10000);
});
