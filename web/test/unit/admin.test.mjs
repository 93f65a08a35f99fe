// Unit tests of the images and tokens pages' logic (src/admin.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { nameProblem, suggestImageName, uploadUrl, deleteOutcome, ttlSeconds } from "../../build-unit/admin.js";

test("image names: checked, suggested from the file, in the upload URL", () => {
  assert.equal(nameProblem("tiny-base"), "");
  assert.match(nameProblem("Tiny"), /lower-case/);
  assert.match(nameProblem(""), /enter/);
  assert.match(nameProblem("a".repeat(64)), /63/);
  assert.equal(suggestImageName("Debian 12 Generic.qcow2"), "debian-12-generic");
  assert.equal(suggestImageName("vmlinuz-6.1.0"), "vmlinuz-6-1-0");
  assert.equal(suggestImageName("__.img"), "");
  assert.equal(uploadUrl("tiny-base", "disk"), "/api/v1/images?name=tiny-base&kind=disk");
});

test("image delete: outcome per host", () => {
  assert.equal(deleteOutcome([]), "");
  assert.equal(deleteOutcome(undefined), "");
  assert.equal(deleteOutcome([{ host: "h1", outcome: "removed" }, { host: "h2", outcome: "removed" },
    { host: "h3", outcome: "kept" }, { host: "h4", outcome: "unreachable" }]),
  "removed from h1, h2; kept on h3 (a VM disk is an overlay on it); h4 unreachable (its copy stays)");
});

test("token lifetimes", () => {
  assert.equal(ttlSeconds(""), undefined);
  assert.equal(ttlSeconds("3600"), 3600);
  assert.equal(ttlSeconds("90m"), 5400);
  assert.equal(ttlSeconds("7d"), 604800);
  assert.equal(ttlSeconds("1 h"), 3600);
  assert.equal(ttlSeconds("0"), null);
  assert.equal(ttlSeconds("soon"), null);
});
