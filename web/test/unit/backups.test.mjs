// Unit tests of the backup pages' logic (src/backup-logic.ts): retention fields, prune,
// restore and schedule bodies as the API takes them, verify outcomes, errors by field.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  backupRows, backupVms, envelopeProblem, problemKey, pruneBody, restoreBody, retentionFrom, retentionText,
  scheduleBody, selectorFrom, verifyOutcome,
} from "../../build-unit/backup-logic.js";

test("retention: counts from the form, empty and 0 left out, at least one kept", () => {
  assert.deepEqual(retentionFrom({ keep_last: "3", keep_daily: "", keep_weekly: "0" }), { ok: true, value: { keep_last: 3 } });
  assert.deepEqual(retentionFrom({ keep_daily: " 7 ", keep_yearly: "1" }), { ok: true, value: { keep_daily: 7, keep_yearly: 1 } });
  assert.equal(retentionFrom({}).problem.field, "keep_last");
  assert.equal(retentionFrom({ keep_last: "0" }).problem.field, "keep_last");
  assert.equal(retentionFrom({ keep_last: "2", keep_daily: "-1" }).problem.field, "keep_daily");
  assert.equal(retentionFrom({ keep_monthly: "1.5" }).problem.field, "keep_monthly");
  assert.match(retentionFrom({ keep_weekly: "100001" }).problem.message, /100000/);
  assert.equal(retentionFrom({ keep_weekly: "100000" }).ok, true);
});

test("selector: key=value pairs, commas or spaces", () => {
  assert.deepEqual(selectorFrom("tier=web, team=a").value, { tier: "web", team: "a" });
  assert.deepEqual(selectorFrom("tier=web team=").value, { tier: "web", team: "" });
  assert.equal(selectorFrom("").problem.field, "selector");
  assert.match(selectorFrom("tier").problem.message, /key=value/);
  assert.equal(selectorFrom("=x").ok, false);
});

test("prune body: one VM or a selector, the counts, dry_run", () => {
  assert.deepEqual(pruneBody({ by: "vm", vm: "web-1", selector: "x=y" }, { keep_last: "2" }, true).value,
    { vm: "web-1", keep_last: 2, dry_run: true });
  assert.deepEqual(pruneBody({ by: "selector", vm: "web-1", selector: "tier=web" }, { keep_daily: "7" }, false).value,
    { selector: { tier: "web" }, keep_daily: 7, dry_run: false });
  assert.equal(pruneBody({ by: "vm", vm: " ", selector: "" }, { keep_last: "1" }, true).problem.field, "vm");
  assert.equal(pruneBody({ by: "vm", vm: "a", selector: "" }, {}, true).problem.field, "keep_last");
});

test("restore body: new_vm or vm, exactly one, the new name checked", () => {
  assert.deepEqual(restoreBody("new", " web-1-restored ").value, { new_vm: "web-1-restored" });
  assert.deepEqual(restoreBody("replace", "web-1").value, { vm: "web-1" });
  assert.deepEqual(restoreBody("new", "web-2", "shared").value, { new_vm: "web-2", datastore: "shared" });
  assert.deepEqual(restoreBody("new", "web-2", "").value, { new_vm: "web-2", datastore: "" });
  assert.deepEqual(restoreBody("replace", "web-1", "shared").value, { vm: "web-1" });  // disks stay where they are
  assert.equal(restoreBody("new", "").problem.field, "new_vm");
  assert.equal(restoreBody("new", "Web_1").problem.field, "new_vm");
  assert.equal(restoreBody("replace", "").problem.field, "vm");
});

const form = (o = {}) => ({ name: "nightly", by: "vm", vm: "web-1", selector: "", time: "02:30", days: [], fullOn: [], keep: {}, sync: false, ...o });

test("schedule body: the API's fields, days in week order, optional retention and sync", () => {
  assert.deepEqual(scheduleBody(form()).value, { name: "nightly", vm: "web-1", time: "02:30" });
  assert.deepEqual(scheduleBody(form({ by: "selector", selector: "tier=web", days: ["sun", "mon"], fullOn: ["sun"], keep: { keep_last: "3", keep_weekly: "" }, sync: true })).value,
    { name: "nightly", selector: { tier: "web" }, time: "02:30", days: ["mon", "sun"], full_on: ["sun"], retention: { keep_last: 3 }, sync: true });
  // full_on with no days: every day runs, so any day is fine
  assert.deepEqual(scheduleBody(form({ fullOn: ["sat"] })).value.full_on, ["sat"]);
});

test("schedule body: each objection names the API's field", () => {
  assert.equal(scheduleBody(form({ name: "Nightly" })).problem.field, "name");
  assert.equal(scheduleBody(form({ vm: "" })).problem.field, "vm");
  assert.equal(scheduleBody(form({ by: "selector", selector: "nope" })).problem.field, "selector");
  for (const t of ["24:00", "2:30", "02:60", ""]) assert.equal(scheduleBody(form({ time: t })).problem.field, "time", t);
  assert.equal(scheduleBody(form({ days: ["mon"], fullOn: ["sun"] })).problem.field, "full_on");
  assert.equal(scheduleBody(form({ keep: { keep_last: "0" } })).problem.field, "retention.keep_last");
  assert.equal(scheduleBody(form({ keep: { keep_daily: "x" } })).problem.field, "retention.keep_daily");
});

test("retention text, rows newest first and by VM, the VMs with backups", () => {
  assert.equal(retentionText(null), "none");
  assert.equal(retentionText({ keep_last: 3, keep_daily: 7, keep_weekly: 0 }), "last 3, daily 7");
  const b = (id, vm, t) => ({ id, vm, created_unix_ms: t });
  const list = [b("a", "web-1", 1), b("b", "web-2", 3), b("c", "web-1", 2)];
  assert.deepEqual(backupRows(list).map((x) => x.id), ["b", "c", "a"]);
  assert.deepEqual(backupRows(list, "web-1").map((x) => x.id), ["c", "a"]);
  assert.deepEqual(backupVms(list), ["web-1", "web-2"]);
  assert.deepEqual(list.map((x) => x.id), ["a", "b", "c"], "the API's list is not reordered in place");
});

test("verify outcome: nothing while running, chunks checked, the problems", () => {
  assert.equal(verifyOutcome({ state: "running" }), null);
  assert.deepEqual(verifyOutcome({ state: "succeeded", result: { chunks_checked: 12, problems: [], ok: true } }),
    { ok: true, text: "intact: 12 chunks checked, no problem" });
  assert.deepEqual(verifyOutcome({ state: "failed", result: { chunks_checked: 1, problems: ["chunk ab12 missing", "disk root: bad index"] } }),
    { ok: false, text: "2 problems (1 chunk checked): chunk ab12 missing; disk root: bad index" });
  assert.deepEqual(verifyOutcome({ state: "failed", message: "not_found: no backup x" }), { ok: false, text: "not_found: no backup x" });
});

test("errors: the envelope's field and message; which control shows them", () => {
  assert.deepEqual(envelopeProblem({ error: { code: "invalid_argument", message: "bad", field: "keep_daily" } }, "x"), { field: "keep_daily", message: "bad" });
  assert.deepEqual(envelopeProblem({ error: { code: "conflict", message: "a backup runs" } }, "x"), { field: "", message: "a backup runs" });
  assert.deepEqual(envelopeProblem(undefined, "refused"), { field: "", message: "refused" });
  assert.equal(problemKey("selector.tier"), "selector");
  assert.equal(problemKey("retention.keep_weekly"), "keep_weekly");
  assert.equal(problemKey("time"), "time");
  assert.equal(problemKey("days[2]"), "days");
  assert.equal(problemKey("full_on[0]"), "full_on");
});
