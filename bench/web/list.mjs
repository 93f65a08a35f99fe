// The VM list in headless Chromium at 10 000 VMs (bench/web/run starts stratad and fills
// it). Times are taken inside the page (performance.now(), requestAnimationFrame), so the
// DevTools round trips are not counted. Medians of RUNS.
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

// playwright-core is the web console's dev dependency: resolve it from web/.
const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "../../web/package.json"));
const { chromium } = require("playwright-core");

const env = (k, d) => process.env[k] ?? d;
const url = env("STRATA_URL");
const token = env("ADMIN_TOKEN");
const runs = Number(env("RUNS", "5"));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const fmt = (x) => x.toFixed(0);

const browser = await chromium.launch({
  executablePath: env("CHROMIUM", "/usr/bin/chromium"),
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// Logs in once; later contexts get the session cookie (a fresh cache each).
const login = await browser.newContext();
{
  const p = await login.newPage();
  await p.goto(url + "/");
  await p.getByLabel("API token", { exact: true }).fill(token);
  await p.getByRole("button", { name: "Log in" }).click();
  await p.getByRole("heading", { name: "Dashboard" }).waitFor();
}
const cookies = await login.cookies();

const ROWS = "table[aria-label='Virtual machines'] tbody tr[data-vm]";
// Navigation start (performance.now() = 0) until the first rows are in the DOM and painted.
async function firstRender(page) {
  await page.goto(url + "/vms", { waitUntil: "commit" });
  const h = await page.waitForFunction((sel) => new Promise((res) => {
    const check = () => (document.querySelector(sel) ? requestAnimationFrame(() => res(performance.now())) : requestAnimationFrame(check));
    check();
  }), ROWS, { timeout: 30000 });
  return await h.jsonValue();
}

// Navigation to the dashboard until its hosts table and the VM count are painted.
async function dashboardRender(page) {
  await page.goto(url + "/", { waitUntil: "commit" });
  const h = await page.waitForFunction(() => new Promise((res) => {
    const ready = () => document.querySelector("tr[data-host]") && document.querySelector("dl.counts dd")?.textContent !== "0";
    const check = () => (ready() ? requestAnimationFrame(() => res(performance.now())) : requestAnimationFrame(check));
    check();
  }), null, { timeout: 60000 });
  return await h.jsonValue();
}

// Navigation to the host page of the phantom host (all N VMs are placed on it) until its
// first page of VMs is painted.
async function hostPageRender(page) {
  await page.goto(url + "/hosts/phantom", { waitUntil: "commit" });
  const h = await page.waitForFunction(() => new Promise((res) => {
    const ready = () => document.querySelector("table[aria-label='VMs on this host'] tbody tr[data-vm]");
    const check = () => (ready() ? requestAnimationFrame(() => res(performance.now())) : requestAnimationFrame(check));
    check();
  }), null, { timeout: 60000 });
  return await h.jsonValue();
}

// Runs `act` in the page and waits (rAF) until `done` holds; the elapsed ms.
async function roundTrip(page, act, done, arg) {
  return await page.evaluate(async ([actSrc, doneSrc, sel, a]) => {
    const act = new Function("sel", "a", actSrc);
    const done = new Function("sel", "a", doneSrc);
    const t0 = performance.now();
    act(sel, a);
    await new Promise((res) => { const f = () => (done(sel, a) ? res() : requestAnimationFrame(f)); f(); });
    return performance.now() - t0;
  }, [act, done, ROWS, arg]);
}

// Main-thread tasks over 50 ms from the start of each page ("start-end" ms).
// Long animation frames (LoAF, over 50 ms from a task's start to its frame's paint) split
// into script, style and layout, and the rest (paint, raster, compositing): where a frame
// that shows the rows went, which long tasks alone do not say.
const recordLongTasks = () => {
  window.strataLongTasks = [];
  new PerformanceObserver((l) => {
    for (const e of l.getEntries()) window.strataLongTasks.push(`${e.startTime.toFixed(0)}-${(e.startTime + e.duration).toFixed(0)}`);
  }).observe({ type: "longtask" });
  window.strataFrames = [];
  try {
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) {
        const end = e.startTime + e.duration;
        const script = e.scripts.reduce((a, x) => a + x.duration, 0);
        const style = e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0;
        const render = e.renderStart ? end - e.renderStart : 0;
        window.strataFrames.push(`${e.startTime.toFixed(0)}-${end.toFixed(0)} (script ${script.toFixed(0)}, ` +
          `rendering ${render.toFixed(0)} of which style+layout onwards ${style.toFixed(0)}, blocked ${e.blockingDuration.toFixed(0)})`);
      }
    }).observe({ type: "long-animation-frame", buffered: true });
  } catch { /* not supported */ }
};
const where = (page) => page.evaluate(() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const parts = [`html ${nav.responseEnd.toFixed(0)}`, `DOMContentLoaded ${nav.domContentLoadedEventEnd.toFixed(0)}`];
  for (const t of window.strataLongTasks ?? []) parts.push(`long task ${t}`);
  for (const f of window.strataFrames ?? []) parts.push(`long frame ${f}`);
  for (const p of performance.getEntriesByType("paint")) parts.push(`${p.name} ${p.startTime.toFixed(0)}`);
  for (const m of performance.getEntriesByType("mark")) parts.push(`${m.name} ${m.startTime.toFixed(0)}`);
  for (const e of performance.getEntriesByType("resource"))
    parts.push(`${e.name.replace(location.origin, "").replace(/\?.*/, "").slice(0, 40)} ${e.startTime.toFixed(0)}-${e.responseEnd.toFixed(0)}`);
  return parts.join(", ");
});
let breakdown = "", dashBreakdown = "", hostBreakdown = "";
const hostPage = [], dash = [], cold = [], warm = [], filter = [], next = [], big = [], scrollMax = [], scrollAvg = [], scrollLong = [], scrollRefreshes = [];
for (let r = 0; r < runs; r++) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await ctx.addCookies(cookies);
  await ctx.addInitScript(recordLongTasks);
  const page = await ctx.newPage();
  cold.push(await firstRender(page));
  if (r === 0) breakdown = await where(page);
  warm.push(await firstRender(page));
  const rows = await page.locator(ROWS).count();
  if (rows !== 50) throw new Error(`first page has ${rows} rows, expected 50`);

  // Filter round trip: a name substring matching 10 VMs, applied on the server.
  const needle = `b0${100 + r}`;  // b0100: b01000..b01009
  filter.push(await roundTrip(page,
    `const i = document.getElementById("vm-name"); i.value = a; i.dispatchEvent(new InputEvent("input", { bubbles: true }));
     document.querySelector("form[aria-label='VM list filters'] button[type=submit]").click();`,
    `const rs = [...document.querySelectorAll(sel)]; return rs.length > 0 && rs.length <= 10 && rs.every((x) => x.dataset.vm.includes(a));`,
    needle));
  // Back to all, then a page change.
  await roundTrip(page,
    `const i = document.getElementById("vm-name"); i.value = ""; i.dispatchEvent(new InputEvent("input", { bubbles: true }));
     document.querySelector("form[aria-label='VM list filters'] button[type=submit]").click();`,
    `return document.querySelectorAll(sel).length === 50;`, "");
  const firstName = await page.locator(ROWS).first().getAttribute("data-vm");
  next.push(await roundTrip(page,
    `[...document.querySelectorAll("button")].find((b) => b.textContent.trim() === "Next page").click();`,
    `const f = document.querySelector(sel); return f && f.dataset.vm !== a && document.querySelectorAll(sel).length === 50;`,
    firstName));
  // 500 per page: render, then scroll through it frame by frame.
  big.push(await roundTrip(page,
    `const s = document.getElementById("vm-limit"); s.value = "500"; s.dispatchEvent(new Event("change", { bubbles: true }));`,
    `return document.querySelectorAll(sel).length === 500;`, ""));
  const frames = await page.evaluate(async () => {
    // Main-thread tasks over 50 ms while scrolling (script or style/layout: jank a
    // compositor-only scroll would not have).
    const long = [];
    const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) long.push(e.duration); });
    try { obs.observe({ type: "longtask" }); } catch { /* not supported */ }
    window.scrollTo(0, 0);
    const t0 = performance.now();
    const gaps = [];
    let last = performance.now();
    while (window.scrollY + window.innerHeight < document.documentElement.scrollHeight - 2) {
      window.scrollBy(0, 300);
      await new Promise((res) => requestAnimationFrame(res));
      const now = performance.now();
      gaps.push(now - last);
      last = now;
    }
    obs.disconnect();
    const refreshes = performance.getEntriesByType("mark").filter((m) => m.name.endsWith(":refreshed") && m.startTime >= t0).length;
    return { gaps, long, refreshes };
  });
  scrollLong.push(frames.long.length);
  scrollRefreshes.push(frames.refreshes);
  scrollMax.push(Math.max(...frames.gaps));
  scrollAvg.push(frames.gaps.reduce((a, b) => a + b, 0) / frames.gaps.length);
  await ctx.close();
  // The dashboard in a fresh context (nothing cached), last so the list runs are as before.
  const dctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await dctx.addCookies(cookies);
  await dctx.addInitScript(recordLongTasks);
  const dpage = await dctx.newPage();
  dash.push(await dashboardRender(dpage));
  if (r === 0) dashBreakdown = await where(dpage);
  await dctx.close();
  const hctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await hctx.addCookies(cookies);
  await hctx.addInitScript(recordLongTasks);
  const hpage = await hctx.newPage();
  hostPage.push(await hostPageRender(hpage));
  if (r === 0) hostBreakdown = await where(hpage);
  await hctx.close();
}
await browser.close();

const A = median(cold), B = median(filter);
console.log(`VMs in the store:                  ${env("N")}`);
console.log(`first render /vms (nothing cached): ${fmt(A)} ms   (runs: ${cold.map(fmt).join(", ")})`);
console.log(`  where the first one went (ms from navigation): ${breakdown}`);
console.log(`first render / (dashboard, nothing cached): ${fmt(median(dash))} ms   (runs: ${dash.map(fmt).join(", ")})`);
console.log(`  where the first one went: ${dashBreakdown}`);
console.log(`first render /hosts/phantom (its ${env("N")} VMs paged, nothing cached): ${fmt(median(hostPage))} ms   (runs: ${hostPage.map(fmt).join(", ")})`);
console.log(`  where the first one went: ${hostBreakdown}`);
console.log(`first render /vms (assets cached):  ${fmt(median(warm))} ms`);
console.log(`filter round trip (name, server):   ${fmt(B)} ms   (runs: ${filter.map(fmt).join(", ")})`);
console.log(`page change (Next):                 ${fmt(median(next))} ms`);
console.log(`500 per page, render:               ${fmt(median(big))} ms`);
console.log(`scroll through 500 rows:            frame avg ${median(scrollAvg).toFixed(1)} ms, max ${fmt(median(scrollMax))} ms, main-thread tasks > 50 ms: ${median(scrollLong)}, list refreshes (live events) meanwhile: ${median(scrollRefreshes)}`);
console.log(`same first page by curl (API only): ${env("CURL_MS")} ms; the filtered request: ${env("CURL_FILTER_MS")} ms`);
console.log(`JavaScript gzip, first visit:       ${env("JS_KB")} kB (all chunks with the consoles: ${env("JS_ALL_KB")} kB)`);
console.log(`web: vm_list_first_render_ms=${fmt(A)} filter_ms=${fmt(B)} js_gzip_kb=${env("JS_KB")}`);
