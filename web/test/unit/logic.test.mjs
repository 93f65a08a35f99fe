// Unit tests of the console's own logic (node's test runner on the tsc output of
// src/format.ts and src/events.ts: `npm test`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { allocations, canOperate, countByState, percent, mib, hostAlert } from "../../build-unit/format.js";
import { SseParser } from "../../build-unit/events.js";

test("roles: only operators and admins operate", () => {
  assert.equal(canOperate("viewer"), false);
  assert.equal(canOperate(""), false);
  assert.equal(canOperate("operator"), true);
  assert.equal(canOperate("admin"), true);
});

test("VMs by state, largest first", () => {
  const vm = (s) => ({ status: { state: s } });
  assert.deepEqual(countByState([vm("running"), vm("stopped"), vm("running"), {}]), [
    ["running", 2], ["stopped", 1], ["unknown", 1],
  ]);
});

test("allocations per host from the VMs' specs", () => {
  const a = allocations([
    { host: "h1", spec: { vcpus: 2, memory_mib: 512 } },
    { host: "h1", spec: { vcpus: 1, memory_mib: 128 } },
    { status: { host: "h2" }, spec: { vcpus: 4 } },
    { spec: { vcpus: 8, memory_mib: 64 } },
  ]);
  assert.deepEqual(a.get("h1"), { vcpus: 3, memoryMib: 640 });
  assert.deepEqual(a.get("h2"), { vcpus: 4, memoryMib: 0 });
  assert.equal(a.size, 2);
  assert.equal(percent(3, 4), 75);
  assert.equal(percent(1, 0), 0);
  assert.equal(mib(2048), "2.0 GiB");
  assert.equal(mib(64), "64 MiB");
  assert.equal(hostAlert({ state: "unreachable" }), "unreachable");
  assert.equal(hostAlert({ state: "up", reachability: "up" }), "");
});

test("SSE parser: named events, ids, split chunks, comments, CRLF", () => {
  const p = new SseParser();
  assert.deepEqual(p.feed(": keep-alive\n\nid: 7\nevent: vm.start\nda"), []);
  assert.deepEqual(p.feed('ta: {"seq":7}\n\n'), [{ id: "7", event: "vm.start", data: '{"seq":7}' }]);
  assert.deepEqual(p.feed("id: 8\r\ndata: a\r\ndata: b\r\n\r\n"), [{ id: "8", event: "message", data: "a\nb" }]);
  assert.deepEqual(p.feed("event: x\n\n"), []);  // no data: no message
});
