// Unit tests of the VM list's bulk actions (src/bulk.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { runEach, summarize, pageSelection, toggleAll } from "../../build-unit/bulk.js";

test("runEach: every item's own result, in order, at most `limit` at once", async () => {
  let running = 0;
  let peak = 0;
  const results = await runEach(["a", "b", "c", "d", "e"], 2, async (n) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, n === "a" ? 20 : 1));
    running--;
    if (n === "c") throw new Error("network down");
    return n === "d" ? { ok: false, message: "the VM is not meant to run" } : { ok: true, message: "accepted" };
  });
  assert.equal(peak, 2);
  assert.deepEqual(results, [
    { name: "a", ok: true, message: "accepted" },
    { name: "b", ok: true, message: "accepted" },
    { name: "c", ok: false, message: "network down" },
    { name: "d", ok: false, message: "the VM is not meant to run" },
    { name: "e", ok: true, message: "accepted" },
  ]);
  assert.equal(summarize("stop", results), "stop: 3 of 5 succeeded, 2 failed");
  assert.equal(summarize("start", results.slice(0, 2)), "start: 2 of 2 succeeded");
  assert.deepEqual(await runEach([], 4, async () => ({ ok: true, message: "" })), []);
});

test("page selection and select-all", () => {
  const shown = ["a", "b", "c"];
  assert.equal(pageSelection(new Set(), shown), "none");
  assert.equal(pageSelection(new Set(["a", "x"]), shown), "some");
  assert.equal(pageSelection(new Set(shown), shown), "all");
  assert.equal(pageSelection(new Set(), []), "none");
  assert.deepEqual([...toggleAll(new Set(["a"]), shown)], shown);
  assert.deepEqual([...toggleAll(new Set(shown), shown)], []);
  assert.deepEqual([...toggleAll(new Set(["x"]), shown)], shown);  // other pages' rows dropped
});
