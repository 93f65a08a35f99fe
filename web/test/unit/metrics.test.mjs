// Unit tests of the metrics charts' logic (src/metrics.ts): samples -> points, the SVG path.
import { test } from "node:test";
import assert from "node:assert/strict";
import { hostPoint, vmCountersInSample, vmPoints, appendBounded, linePath, niceMax } from "../../build-unit/metrics.js";

test("host sample -> CPU busy and memory used", () => {
  const p = hostPoint({ time_ms: 5, data: { host: { cpu_busy: 0.25, memory_total_bytes: "1000", memory_available_bytes: "400" } } });
  assert.deepEqual(p, { t: 5, cpu: 0.25, mem: 600 });
  assert.deepEqual(hostPoint({ time_ms: 6, data: {} }), { t: 6, cpu: 0, mem: 0 });
});

test("VM counters from the host sample (protobuf strings, zeros left out) and CPU from deltas", () => {
  const s = (t, ns) => ({ time_ms: t, data: { vms: [{ name: "other" }, { name: "web-1", stats: { cpu_time_ns: ns, rss_bytes: "2048" } }] } });
  assert.equal(vmCountersInSample(s(0, "1"), "nope"), undefined);
  const c = [s(0, "0"), s(2000, "1000000000"), s(4000, "5000000000"), s(6000, "100")].map((x) => vmCountersInSample(x, "web-1"));
  assert.deepEqual(vmPoints(c), [
    { t: 2000, cpu: 0.5, mem: 2048 },  // 1 s of CPU in 2 s: half a vCPU
    { t: 4000, cpu: 2, mem: 2048 },  // two vCPUs busy
    { t: 6000, cpu: 0, mem: 2048 },  // the counter went back (QEMU restarted): 0, not negative
  ]);
  assert.deepEqual(vmPoints(c.slice(0, 1)), []);
});

test("appendBounded keeps the newest, in time order", () => {
  let l = [];
  for (let t = 1; t <= 5; t++) l = appendBounded(l, { t }, 3);
  assert.deepEqual(l.map((p) => p.t), [3, 4, 5]);
  assert.equal(appendBounded(l, { t: 4 }, 3), l, "an older sample (already in the history) is dropped");
});

test("linePath spreads x over the width, y from the bottom, clamped", () => {
  assert.equal(linePath([0, 0.5, 2], 100, 10, 1), "M0.0,10.0 L50.0,5.0 L100.0,0.0");
  assert.equal(linePath([], 100, 10, 1), "");
  assert.equal(linePath([1], 100, 10, 2), "M0.0,5.0");
  assert.equal(niceMax([0.3, 0.7]), 1);
  assert.equal(niceMax([130]), 200);
  assert.equal(niceMax([3e9]), 5e9);
  assert.equal(niceMax([]), 1);
  assert.equal(niceMax([5], 8), 8);
  assert.equal(niceMax([9], 8), 10, "above the capacity: the values decide");
});

// The "memory chart stall" of the browser test: once the history fills the chart (150 host
// samples: 45 s at the test's 300 ms heartbeat), a new sample replaces the oldest, so the
// number of points stays the same while the chart moves. Progress is the newest point's time.
test("a full chart keeps its size and moves its newest time with each sample", () => {
  let l = Array.from({ length: 150 }, (_, i) => ({ t: i + 1 }));
  const next = appendBounded(l, { t: 151 }, 150);
  assert.equal(next.length, 150);
  assert.equal(next[next.length - 1].t, 151);
  assert.equal(next[0].t, 2);
  // a VM chart: 151 counters give 150 points, and the same holds
  const counters = Array.from({ length: 151 }, (_, i) => ({ t: i * 1000, cpuNs: i * 1e8, rss: 1 }));
  const more = appendBounded(counters, { t: 151000, cpuNs: 151e8, rss: 1 }, 151);
  assert.equal(vmPoints(more).length, 150);
  assert.equal(vmPoints(more).at(-1).t, 151000);
});
