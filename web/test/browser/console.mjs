// Browser test of the web console against a live stratad (started by
// test/e2e/web_console.sh): headless Debian Chromium driven by playwright-core.
//   STRATA_URL     http://127.0.0.1:PORT
//   ADMIN_TOKEN    an admin token;  VIEWER_TOKEN  a viewer token
//   HOST_NAME      the host that must be listed
//   VM_NAME        a stopped VM to start from the VM list, then its page and serial console
//                  (empty: only the list is checked)
//   VM_DELETE      a stopped VM deleted from its page (empty: skipped)
//   DATASTORE      a datastore the host mounts (its bars on the dashboard and host page)
//   ISO_NAME       an image of kind iso in the catalog (wizard CD-ROM, VM page insert/eject)
//   BACKUPS        1: stratad has --backup-repo and --backup-sync-repo (the backups step)
//   SHOTS_DIR      where the screenshots go
// Prints "N passed, N failed" at the end; exit 1 on any failure.
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import { join } from "node:path";
import { env, expect, finish, launch, step } from "./harness.mjs";

const url = env("STRATA_URL");
const adminToken = env("ADMIN_TOKEN");
const viewerToken = env("VIEWER_TOKEN");
const hostName = env("HOST_NAME", "");
const vmName = env("VM_NAME", "");
const vmDelete = env("VM_DELETE", "");
const datastore = env("DATASTORE", "");
const isoName = env("ISO_NAME", "");
const backups = env("BACKUPS", "") === "1" && vmName !== "";  // stratad has a backup repository and a sync target  // an iso image in the catalog (the CD-ROM checks; empty: left out)
const cmdline = env("VM_CMDLINE", "console=ttyS0");
const wizardVm = "web-wizard";
const shots = env("SHOTS_DIR", "web-shots");
mkdirSync(shots, { recursive: true });

// axe-core (npm, pinned) run inside the page: its source injected over the DevTools
// protocol (page.evaluate is not a <script>, so the strict CSP stays as it is).
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
async function axeViolations(page, name) {
  await page.evaluate(axeSource);
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(" ")) }));
  });
  return found
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${name}: ${v.id} (${v.impact}) at ${v.nodes.join(", ")}`);
}
// The API from outside the browser (another user's changes, seen by the page live).
async function adminApi(method, path, body) {
  const r = await fetch(url + path, { method, headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined });
  if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status} ${await r.text()}`);
  return r.status === 204 ? null : r.json();
}
// A chart follows the metrics stream: its newest point's time (data-last-ms) moves on, twice
// (several heartbeats). Not its number of points: that stops at 150 once the history fills
// the chart (45 s of samples at this test's 300 ms heartbeat), which is what made the old
// wait on data-points time out in long runs while the chart kept moving.
async function chartMoves(page, chart) {
  const sel = `strata-metrics-charts figure[data-chart="${chart}"]`;
  console.log(`     ${chart} chart: ${await page.locator(sel).getAttribute("data-points")} points`);
  for (let i = 0; i < 2; i++) {
    const last = Number(await page.locator(sel).getAttribute("data-last-ms"));
    await page.waitForFunction(([sel, last]) => Number(document.querySelector(sel)?.getAttribute("data-last-ms")) > last,
      [sel, last], { timeout: 15000 });
  }
}
const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2bUq0n3l1S9yQh1m0mC4sQkQ7n0wq web@strata";

// playwright gives it a fresh profile (the flags: harness.mjs, docs/internals/web.md).
const browser = await launch();
const violations = [];
async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => console.log(`     page error: ${e.message.split("\n")[0]}`));
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) violations.push(m.text());
  });
  // Refused inline styles are not always console messages: the page's own
  // securitypolicyviolation events are the reliable record.
  await context.exposeFunction("strataCspViolation", (v) => violations.push(v));
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      window.strataCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  return { context, page };
}

try {
  const { context, page } = await newPage();

  await step("login page, then the dashboard after logging in with a token", async () => {
    const resp = await page.goto(url + "/");
    expect(resp && resp.status() === 200, `GET / answered ${resp && resp.status()}`);
    const csp = resp.headers()["content-security-policy"] ?? "";
    expect(csp.includes("script-src 'self'"), `CSP header: ${csp}`);
    await page.getByLabel("API token", { exact: true }).fill("sta_wrong");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: /token/i }).waitFor();
    await page.getByLabel("API token", { exact: true }).fill(adminToken);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Dashboard" }).waitFor();
    const cookies = await context.cookies();
    const c = cookies.find((x) => x.name === "strata_session");
    expect(c && c.httpOnly && c.sameSite === "Strict", `session cookie: ${JSON.stringify(c)}`);
    expect(!page.url().includes(adminToken), "the token is in the URL");
  });

  await step("dashboard: host with capacity bars, live events", async () => {
    if (hostName) await page.locator(`tr[data-host="${hostName}"]`).first().waitFor();
    const meters = await page.locator("meter").count();
    expect(!hostName || meters >= 2, `expected CPU and memory meters, saw ${meters}`);
    await page.locator(".live.on").waitFor();
    // The numbers are the server's (GET /api/v1/summary), not counted from a page of VMs:
    // the total, every state, and each host's VMs and allocation match the API's answer
    // (polled: a live event may refresh the page between the two reads).
    let mismatch = "";
    for (let i = 0; i < 50; i++) {
      mismatch = await page.evaluate(async () => {
        const s = await (await fetch("/api/v1/summary", { credentials: "same-origin" })).json();
        const shown = {};
        for (const d of document.querySelectorAll("dl.counts [data-count]")) shown[d.dataset.count] = Number(d.querySelector("dd").textContent);
        const want = { total: s.vms.total, ...s.vms.by_state };
        if (JSON.stringify(Object.entries(shown).sort()) !== JSON.stringify(Object.entries(want).sort()))
          return `VM counts ${JSON.stringify(shown)} != API ${JSON.stringify(want)}`;
        for (const h of s.hosts.items) {
          const row = document.querySelector(`tr[data-host="${h.name}"]`);
          const text = row ? row.textContent : "";
          if (!text.includes(`${h.allocated_vcpus} / ${h.cpu_threads} vCPU`)) return `host ${h.name}: ${text} lacks ${h.allocated_vcpus} / ${h.cpu_threads} vCPU`;
        }
        const fleet = document.querySelector(".fleet-capacity")?.textContent ?? "";
        if (!fleet.includes(`${s.capacity.allocated_vcpus} / ${s.capacity.schedulable_vcpus} vCPU`)) return `capacity: ${fleet}`;
        // Datastores: one bar per storage with the API's percentage used.
        for (const d of s.datastores.items) {
          const pct = d.total_bytes > 0 ? Math.round((d.used_bytes / d.total_bytes) * 100) : 0;
          const m = document.querySelector(`.fleet-datastores [data-datastore="${d.name}"] meter`);
          if (m?.getAttribute("aria-label") !== `Datastore ${d.name} used: ${pct}%`) return `datastore ${d.name}: ${m?.getAttribute("aria-label")} != ${pct}%`;
        }
        return "";
      });
      if (!mismatch) break;
      await page.waitForTimeout(200);
    }
    expect(!mismatch, `dashboard numbers differ from GET /api/v1/summary: ${mismatch}`);
    if (datastore) await page.locator(`.fleet-datastores [data-datastore="${datastore}"]`).waitFor();
    await page.screenshot({ path: join(shots, "dashboard.png"), fullPage: true });
  });

  // The events stream dropped: a second tab of the same session reaches stratad through a
  // TCP relay of this test, which cuts every connection and refuses new ones for a while;
  // events made meanwhile by another client; then the relay lets connections through
  // again: the feed reconnects with Last-Event-ID and the page gets every missed event once.
  await step("a dropped events stream reconnects without losing an event", async () => {
    const target = new URL(url);
    const sockets = new Set();
    let cut = false;
    const relay = net.createServer((client) => {
      if (cut) return client.destroy();
      const upstream = net.connect(Number(target.port), target.hostname);
      for (const [a, b] of [[client, upstream], [upstream, client]]) {
        a.pipe(b);
        a.on("error", () => b.destroy());
        a.on("close", () => b.destroy());
      }
      sockets.add(client).add(upstream);
      client.on("close", () => { sockets.delete(client); sockets.delete(upstream); });
    });
    await new Promise((r) => relay.listen(0, "127.0.0.1", r));
    const tab = await context.newPage();
    try {
      // The cookie is the host's (127.0.0.1, any port): this tab is logged in already.
      await tab.goto(`http://127.0.0.1:${relay.address().port}/`);
      await tab.locator(".live.on").waitFor();
      cut = true;
      for (const so of sockets) so.destroy();
      await tab.locator(".live.off").waitFor();
      const names = ["web-missed-1", "web-missed-2"];
      const ids = [];
      for (const n of names) ids.push((await adminApi("POST", "/api/v1/tokens", { name: n, role: "viewer" })).id);
      for (const id of ids) await adminApi("DELETE", `/api/v1/tokens/${id}`);
      const want = [];
      for (const n of names) for (const e of (await adminApi("GET", `/api/v1/events?target=token/${n}&limit=10`)).events) want.push(e.seq);
      expect(want.length >= 2, `events of the missed tokens: ${want}`);
      cut = false;
      await tab.locator(".live.on").waitFor({ timeout: 20000 });
      await tab.waitForFunction((want) => {
        const seqs = (document.querySelector("strata-app")?.events ?? []).map((e) => e.seq);
        return want.every((s) => seqs.includes(s));
      }, want, { timeout: 10000 });
      const seqs = await tab.evaluate(() => document.querySelector("strata-app").events.map((e) => e.seq));
      expect(new Set(seqs).size === seqs.length, `an event arrived twice: ${seqs}`);
      await tab.locator("ol.events li", { hasText: "token/web-missed-2" }).first().waitFor();
    } finally {
      await tab.close();
      for (const so of sockets) so.destroy();
      relay.close();
    }
  });

  await step("hosts page lists the host (and survives a reload on its path)", async () => {
    await page.getByRole("link", { name: "Hosts" }).click();
    await page.getByRole("heading", { name: "Hosts" }).waitFor();
    if (hostName) await page.locator(`tr[data-host="${hostName}"]`).waitFor();
    await page.reload();
    await page.getByRole("heading", { name: "Hosts" }).waitFor();
    await page.screenshot({ path: join(shots, "hosts.png"), fullPage: true });
  });

  await step("VM list, and starting a VM from it", async () => {
    await page.getByRole("link", { name: "VMs" }).click();
    await page.getByRole("heading", { name: "Virtual machines" }).waitFor();
    await page.getByRole("table", { name: "Virtual machines" }).waitFor();
    if (vmName) {
      const row = page.locator(`tr[data-vm="${vmName}"]`);
      await row.waitFor();
      await row.getByRole("button", { name: `Start ${vmName}` }).click();
      await page.getByRole("status").filter({ hasText: `start ${vmName}: accepted` }).waitFor();
      // The live event stream refreshes the row (no polling): the observed state becomes
      // running once QEMU runs the guest.
      await row.locator(".badge.state-running").waitFor({ timeout: 60000 });
    }
    await page.screenshot({ path: join(shots, "vms.png"), fullPage: true });
  });

  if (vmName && vmDelete) {
    await step("VM list: pages and filters on the server (limit/after, host, label)", async () => {
      const table = page.getByRole("table", { name: "Virtual machines" });
      await page.goto(url + "/vms?limit=1");
      await table.locator("tbody tr").first().waitFor();
      expect(await table.locator("tbody tr").count() === 1, "limit=1 shows one VM");
      const first = await table.locator("tbody tr").first().getAttribute("data-vm");
      await page.getByRole("button", { name: "Next page" }).click();
      await page.getByRole("status").filter({ hasText: "Page 2" }).waitFor();
      await table.locator(`tbody tr:not([data-vm="${first}"])`).first().waitFor();
      const second = await table.locator("tbody tr").first().getAttribute("data-vm");
      expect(new Set([first, second, vmName, vmDelete]).size === 2, `pages showed ${first}, ${second}`);
      await page.getByRole("button", { name: "Previous page" }).click();
      await table.locator(`tr[data-vm="${first}"]`).waitFor();
      await page.getByLabel("Per page").selectOption("50");
      await table.locator(`tr[data-vm="${vmName}"]`).waitFor();
      await table.locator(`tr[data-vm="${vmDelete}"]`).waitFor();
      // web-1 carries tier=web: the label filter keeps it alone; a label nobody has, none.
      await page.getByLabel("Label", { exact: true }).fill("tier=web");
      await page.getByRole("button", { name: "Apply" }).click();
      await table.locator(`tr[data-vm="${vmDelete}"]`).waitFor({ state: "detached" });
      expect(await table.locator("tbody tr").count() === 1, "label filter tier=web");
      expect(page.url().includes("label=tier%3Dweb"), `filter not in the URL: ${page.url()}`);
      await page.getByLabel("Label", { exact: true }).fill("tier=db");
      await page.getByRole("button", { name: "Apply" }).click();
      await table.locator("tbody tr").first().waitFor({ state: "detached" });
      await page.getByLabel("Label", { exact: true }).fill("");
      await page.getByLabel("Host", { exact: true }).selectOption(hostName);
      await table.locator(`tr[data-vm="${vmDelete}"]`).waitFor();
      // Sorted by name on the server, both ways; name and state filters on the server.
      const order = async () => table.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.vm));
      expect(JSON.stringify(await order()) === JSON.stringify([vmName, vmDelete].sort()), `by name: ${await order()}`);
      await page.getByRole("button", { name: "Sort by name descending" }).click();
      await page.locator('th[aria-sort="descending"]').waitFor();
      await page.waitForFunction((first) => document.querySelector("table[aria-label='Virtual machines'] tbody tr")?.getAttribute("data-vm") === first,
        [vmName, vmDelete].sort().reverse()[0]);
      expect(page.url().includes("sort=-name"), `sort not in the URL: ${page.url()}`);
      await page.getByLabel("Name", { exact: true }).fill(vmDelete.toUpperCase());
      await page.getByRole("button", { name: "Apply" }).click();
      await table.locator(`tr[data-vm="${vmName}"]`).waitFor({ state: "detached" });
      await table.locator(`tr[data-vm="${vmDelete}"]`).waitFor();
      await page.getByLabel("Name", { exact: true }).fill("");
      await page.getByLabel("State").selectOption("running");
      await table.locator(`tr[data-vm="${vmName}"]`).waitFor();
      await table.locator(`tr[data-vm="${vmDelete}"]`).waitFor({ state: "detached" });
      const viaApi = await page.evaluate(async () => (await fetch("/api/v1/vms?sort=created")).status);
      expect(viaApi === 400, `sort=created answered ${viaApi}`);
      await page.screenshot({ path: join(shots, "vms-paged.png"), fullPage: true });
      await page.goto(url + "/vms");
    });
  }

  if (vmName) {
    await step("create wizard: the scheduler's explanation before Create, then the task", async () => {
      await page.goto(url + "/vms");
      await page.getByRole("link", { name: "Create VM…" }).click();
      await page.getByRole("heading", { name: "Create a VM" }).waitFor();
      const explain = page.getByRole("table", { name: "Placement explanation" });
      await page.getByLabel("Name", { exact: true }).fill(wizardVm);
      await page.getByLabel("Memory (MiB)").fill("128");
      await page.getByLabel("Disk 1 image").selectOption("tiny-base");
      await page.getByLabel("Kernel", { exact: true }).selectOption("tiny-kernel");
      await page.getByLabel("Initrd").selectOption("tiny-initrd");
      await page.getByLabel("Kernel command line").fill(cmdline);
      await page.getByLabel("Labels").fill("tier=wizard");
      // A selector no host has: refused with the scheduler's reason, Create disabled.
      await page.getByLabel("Node selector").fill("zone=nowhere");
      await explain.locator(`tr[data-placement="${hostName}"]`, { hasText: "selector" }).waitFor();
      await page.getByRole("status").filter({ hasText: "No host fits" }).waitFor();
      expect(await page.getByRole("button", { name: "Create" }).isDisabled(), "Create enabled with no fitting host");
      // A taken name: the API's 409 with its field.
      await page.getByLabel("Node selector").fill("");
      await page.getByLabel("Name", { exact: true }).fill(vmName);
      await page.getByRole("alert").filter({ hasText: "field: name" }).waitFor();
      // ... and next to the Name field, which says it is invalid
      await page.locator("#cw-name-error", { hasText: "already exists" }).waitFor();
      expect(await page.getByLabel("Name", { exact: true }).getAttribute("aria-invalid") === "true", "Name not marked invalid");
      await page.getByLabel("Name", { exact: true }).fill(wizardVm);
      await page.locator("#cw-name-error").waitFor({ state: "detached" });
      // cloud-init: what the server refuses (the dry run's 400 names the field) is said next
      // to that field; the browser checks no key and hashes no password.
      const keys = page.getByLabel("SSH public keys");
      await page.getByLabel("User", { exact: true }).fill("admin");
      await keys.fill("ssh-ed25519 AAAA!!!!this-is-not-base64");
      await page.locator("#cw-ciKeys-error", { hasText: "base64" }).waitFor();
      expect(await keys.getAttribute("aria-invalid") === "true", "SSH keys not marked invalid");
      expect((await keys.getAttribute("aria-describedby") ?? "").includes("cw-ciKeys-error"), "the key's error does not describe the field");
      await keys.fill(sshKey);
      await page.locator("#cw-ciKeys-error").waitFor({ state: "detached" });
      await page.getByLabel("Password hash").fill("hunter2");
      await page.locator("#cw-ciPasswordHash-error", { hasText: "crypt(3)" }).waitFor();
      await page.getByLabel("Password hash").fill("");
      await page.getByLabel("Guest host name").fill("bad_name");
      await page.locator("#cw-ciHostname-error", { hasText: "invalid character" }).waitFor();
      await page.getByLabel("Guest host name").fill("wizard-guest");
      await page.getByLabel("Passwordless sudo").check();
      await page.getByLabel("User-data").fill("#cloud-config\nruncmd: [echo hi]\n");
      // CD-ROM, boot order, firmware, CPU model: a firmware boot order with a kernel is the
      // server's 400 naming boot, said next to Boot order.
      if (isoName) {
        await page.getByLabel("CD-ROM", { exact: true }).selectOption(isoName);
        await page.getByLabel("Boot order").selectOption("cdrom,disk");
        await page.locator("#cw-boot-error", { hasText: "boot order" }).waitFor();
        expect(await page.getByLabel("Boot order").getAttribute("aria-invalid") === "true", "Boot order not marked invalid");
        await page.getByLabel("Boot order").selectOption("");
        await page.locator("#cw-boot-error").waitFor({ state: "detached" });
      }
      // Disks and NICs: any number, each removable. A blank data disk, a blank disk on the
      // datastore, a fourth one removed again; a bridged NIC whose bad name is said next to
      // it, then removed (the test host has no bridge to create it on).
      const addDisk = page.getByRole("button", { name: "Add a disk" });
      await addDisk.click();
      await page.getByLabel("Disk 2 size (GiB)").fill("1");
      await addDisk.click();
      await page.locator("#cw-disk-2-size-error", { hasText: "blank disk needs its size" }).waitFor();
      await page.getByLabel("Disk 3 size (GiB)").fill("1");
      if (datastore) await page.getByLabel("Disk 3 datastore").selectOption(datastore);
      await addDisk.click();
      await page.getByLabel("Disk 4 image").selectOption("tiny-base");
      await page.getByRole("button", { name: "Remove disk 4", exact: true }).click();
      await page.locator('fieldset[data-disks="3"]').waitFor();
      expect(await page.evaluate(() => document.activeElement?.id) === "cw-disks", "the focus is not on Add a disk after a removal");
      await page.getByRole("button", { name: "Add a NIC" }).click();
      await page.getByLabel("NIC 2 type").selectOption("bridge");
      await page.getByLabel("NIC 2 bridge").fill("not a bridge");
      await page.locator("#cw-nic-1-bridge-error", { hasText: "bridge name" }).waitFor();
      expect(await page.getByLabel("NIC 2 bridge").getAttribute("aria-invalid") === "true", "NIC 2 bridge not marked invalid");
      await page.getByRole("button", { name: "Remove NIC 2", exact: true }).click();
      await page.locator('fieldset[data-nics="1"]').waitFor();
      await page.locator("#cw-nic-1-bridge-error").waitFor({ state: "detached" });
      await page.getByLabel("Firmware").selectOption("uefi");
      await page.getByLabel("CPU model").fill("max");
      await explain.locator(`tr[data-placement="${hostName}"] .verdict-chosen`).waitFor();
      await page.getByRole("status").filter({ hasText: `Goes to ${hostName}` }).waitFor();
      await page.getByLabel("Start after creating").uncheck();
      await page.screenshot({ path: join(shots, "create.png"), fullPage: true });
      await page.getByRole("button", { name: "Create" }).click();
      await page.getByRole("heading", { name: `Creating ${wizardVm}` }).waitFor();
      // The controller defines it on the host; the task follows the VM's live events.
      await page.locator("dd .badge.state-succeeded").waitFor({ timeout: 60000 });
      const vm = await page.evaluate(async (n) => (await fetch(`/api/v1/vms/${n}`)).json(), wizardVm);
      expect(vm.labels?.tier === "wizard" && vm.desired_state === "stopped", `created ${JSON.stringify(vm)}`);
      const ci = vm.spec?.cloud_init;
      expect(ci?.hostname === "wizard-guest" && ci.users?.[0]?.name === "admin" && ci.users[0].sudo === true &&
        ci.users[0].ssh_authorized_keys?.[0] === sshKey && ci.users[0].password_set === false && ci.user_data_bytes === 32,
        `cloud_init ${JSON.stringify(ci)}`);
      const disks = vm.spec?.disks ?? [];
      expect(disks.length === 3 && disks[0].name === "root" && disks[0].image === "tiny-base" &&
        disks[1].name === "data" && disks[1].size_bytes === 1024 ** 3 && !disks[1].datastore &&
        disks[2].name === "data2" && disks[2].size_bytes === 1024 ** 3 && (disks[2].datastore ?? "") === datastore,
        `disks ${JSON.stringify(disks)}`);
      expect((vm.spec?.nics ?? []).length === 1 && vm.spec.nics[0].mode === "user", `nics ${JSON.stringify(vm.spec?.nics)}`);
      expect(vm.spec?.firmware === "uefi" && vm.spec?.cpu_model === "max" && (vm.spec?.cdrom ?? null) === (isoName || null),
        `firmware/cpu_model/cdrom ${vm.spec?.firmware} ${vm.spec?.cpu_model} ${vm.spec?.cdrom}`);
      await page.screenshot({ path: join(shots, "create-done.png"), fullPage: true });
      // Its page: the cloud-init it was given (no secret), no guest facts while it is stopped.
      await page.getByRole("link", { name: `Open the VM page of ${wizardVm}` }).click();
      const given = page.locator("ul[data-cloud-init]");
      await given.locator("li", { hasText: "host name wizard-guest" }).waitFor();
      await given.locator("li", { hasText: "user admin (1 SSH key, password locked, sudo)" }).waitFor();
      await given.locator("li", { hasText: "user-data 32 bytes" }).waitFor();
      await page.locator('section[data-guest="no"]').getByRole("status").filter({ hasText: "No guest agent report" }).waitFor();
      await page.locator('dd[data-spec="firmware"]', { hasText: "UEFI" }).waitFor();
      await page.getByRole("table", { name: "Disks" }).getByRole("rowheader", { name: "data", exact: true }).waitFor();
      await page.getByRole("table", { name: "Disks" }).getByRole("rowheader", { name: "data2", exact: true }).waitFor();
      await page.locator('dd[data-spec="cpu"]', { hasText: "max" }).waitFor();
      if (isoName) await page.locator("[data-medium]", { hasText: isoName }).waitFor();
      await page.goto(url + "/vms");
    });

    await step("VM page: spec, disks, NICs, state, actions, events", async () => {
      await page.locator(`tr[data-vm="${vmName}"]`).getByRole("link", { name: vmName }).click();
      await page.getByRole("heading", { name: `VM ${vmName}` }).waitFor();
      expect(new URL(page.url()).pathname === `/vms/${vmName}`, `URL ${page.url()}`);
      await page.getByRole("table", { name: "Disks" }).getByRole("rowheader", { name: "root" }).waitFor();
      await page.getByRole("table", { name: "NICs" }).getByRole("cell", { name: "user" }).waitFor();
      const bar = page.getByRole("toolbar", { name: "VM actions" });
      for (const b of ["Shut down", "Force off", "Reboot", "Pause", "Delete…"])
        await bar.getByRole("button", { name: b, exact: true }).waitFor();
      // Pause, then resume: the state follows over the event stream, no reload.
      await bar.getByRole("button", { name: "Pause", exact: true }).click();
      await page.locator("h1 .badge.state-paused").waitFor({ timeout: 30000 });
      await bar.getByRole("button", { name: "Resume", exact: true }).click();
      await page.locator("h1 .badge.state-running").waitFor({ timeout: 30000 });
      await page.locator(".events li", { hasText: "vm.resume" }).first().waitFor();
      // The panel reads the VM's own events from the API (target=), so its create is there.
      const panel = page.getByRole("list", { name: "Events of this VM" });
      await panel.locator("li", { hasText: "vm.create" }).waitFor();
      const targets = await page.evaluate(async (n) => {
        const r = await (await fetch(`/api/v1/events?target=vm/${n}&limit=5`)).json();
        return [...new Set(r.events.map((e) => e.target))];
      }, vmName);
      expect(JSON.stringify(targets) === JSON.stringify([`vm/${vmName}`]), `target filter: ${targets}`);
      // The tiny guest runs no qemu-guest-agent: the page says so (the Debian guest's facts:
      // test/e2e/web_guest.sh).
      await page.getByRole("heading", { name: "Guest", exact: true }).waitFor();
      await page.locator('section[data-guest="no"]').waitFor();
      // Firmware and CPU: BIOS, and the model its QEMU runs with (its cluster's baseline).
      await page.locator('dd[data-spec="firmware"]', { hasText: "BIOS" }).waitFor();
      const cpu = (await adminApi("GET", `/api/v1/vms/${vmName}`)).cpu;
      if (cpu?.model) await page.locator('dd[data-spec="cpu"]', { hasText: cpu.model }).waitFor();
      // CD-ROM while it runs: insert, then eject; the medium shown follows the VM's events.
      if (isoName) {
        const medium = page.locator("[data-medium]");
        await medium.filter({ hasText: "empty" }).waitFor();
        await page.getByLabel("ISO image").selectOption(isoName);
        await page.getByRole("button", { name: "Insert" }).click();
        await page.getByRole("status").filter({ hasText: `insert ${isoName}: accepted` }).waitFor();
        await medium.filter({ hasText: isoName }).waitFor({ timeout: 30000 });
        expect((await adminApi("GET", `/api/v1/vms/${vmName}`)).spec.cdrom === isoName, "spec.cdrom after insert");
        await page.getByRole("button", { name: "Eject" }).click();
        await medium.filter({ hasText: "empty" }).waitFor({ timeout: 30000 });
        expect((await adminApi("GET", `/api/v1/vms/${vmName}`)).spec.cdrom == null, "spec.cdrom after eject");
      }
      // Live migration: the only host has no other to go to: the API's answer is shown.
      await page.getByRole("form", { name: "Live migration" }).getByRole("button", { name: "Migrate" }).click();
      const said = page.getByRole("status").filter({ hasText: `migrate ${vmName}:` });
      await said.waitFor();
      const direct = await fetch(url + `/api/v1/vms/${vmName}/migrate`, { method: "POST",
        headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" }, body: "{}" });
      const why = (await direct.json()).error?.message ?? "";
      expect(direct.status >= 400 && why && (await said.textContent()).includes(why), `migrate: page "${await said.textContent()}", API ${direct.status} ${why}`);
      await page.screenshot({ path: join(shots, "vm.png"), fullPage: true });
    });

    // Hot-plug (issue 12): a blank disk attached to the running VM lands on a hot-plug slot,
    // shown once its task ended; then detached behind the dialog (its data is deleted).
    await step("VM page: attach a blank disk (hot-plugged on a slot), then detach it", async () => {
      const devices = page.locator("strata-vm-devices");
      const disks = devices.getByRole("table", { name: "Disks" });
      const started = devices.getByRole("table", { name: "Device tasks started here" });
      try {
        // What the running VM cannot lose is disabled, saying why.
        const rootDetach = devices.getByRole("button", { name: "Detach disk root" });
        expect(await rootDetach.isDisabled() && /boot disk/.test(await rootDetach.getAttribute("title") ?? ""), "root's Detach: enabled or no reason");
        await devices.getByRole("button", { name: "Attach disk…" }).click();
        await devices.getByRole("button", { name: "Attach", exact: true }).click();
        await devices.locator("#disk-name-error").waitFor();
        await devices.getByLabel("Disk name").fill("scratch");
        await devices.getByLabel("Size", { exact: true }).fill("64");
        await devices.getByLabel("Size unit").selectOption("MiB");
        await devices.getByRole("button", { name: "Attach", exact: true }).click();
        await started.locator('tr[data-kind="vm.disk.attach"][data-state="succeeded"]').waitFor({ timeout: 30000 });
        const row = disks.locator('tr[data-disk="scratch"]');
        await row.waitFor();
        const slot = Number(await row.getAttribute("data-slot"));
        const d = (await adminApi("GET", `/api/v1/vms/${vmName}`)).spec.disks.find((x) => x.name === "scratch");
        expect(slot > 0 && d?.hotplug_slot === slot && d.size_bytes === 64 * 1024 * 1024, `page slot ${slot}, API ${JSON.stringify(d)}`);
        expect((await row.locator("td").nth(5).textContent()).trim() === String(slot), `slot cell: ${await row.textContent()}`);
        await page.screenshot({ path: join(shots, "vm-devices.png"), fullPage: true });
        await devices.getByRole("button", { name: "Detach disk scratch" }).click();
        const dlg = page.getByRole("dialog", { name: "Detach disk scratch?" });
        expect((await dlg.textContent()).includes("its data is deleted"), "the dialog does not say the data is deleted");
        await dlg.getByRole("button", { name: "Detach and delete scratch" }).click();
        await started.locator('tr[data-kind="vm.disk.detach"][data-state="succeeded"]').waitFor({ timeout: 45000 });
        await row.waitFor({ state: "detached" });
        const after = (await adminApi("GET", `/api/v1/vms/${vmName}`)).spec.disks.map((x) => x.name);
        expect(!after.includes("scratch"), `the API still lists scratch: ${after}`);
      } catch (e) {
        await page.screenshot({ path: join(shots, "vm-devices-failed.png"), fullPage: true }).catch(() => {});
        const tasks = (await adminApi("GET", "/api/v1/tasks?order=newest&limit=5")).tasks ?? [];
        throw new Error(`${(e && e.message ? e.message : String(e)).split("\n")[0]} (tasks: ${tasks.map((t) => `${t.kind} ${t.state} ${t.message ?? ""}`).join("; ")})`);
      }
    });

    // Backups (issue 12): stratad runs with --backup-repo and --backup-sync-repo
    // (test/e2e/web_console.sh). Everything through the pages; the API read alongside.
    if (backups) await step("backups: back up from the VM page, listed, verify, delete, prune preview, schedules, sync, the API's errors", async () => {
     let at = "start";
     const mark = (what) => { at = what; };
     try {
      const section = page.locator("strata-vm-backups");
      await section.getByRole("heading", { name: "Backups" }).waitFor();
      const started = section.getByRole("table", { name: "Backup tasks started here" });
      // Full, then incremental (QEMU's dirty bitmap from the first): each a task followed to its end.
      mark("full backup");
      await section.getByLabel("full (else incremental when possible)").check();
      await section.getByRole("button", { name: "Back up now" }).click();
      await started.locator('tr[data-kind="backup.create"][data-state="succeeded"]').waitFor({ timeout: 120000 });
      mark("incremental backup");
      await section.getByLabel("full (else incremental when possible)").uncheck();
      await section.getByRole("button", { name: "Back up now" }).click();
      await started.locator('tr[data-kind="backup.create"][data-state="succeeded"]').nth(1).waitFor({ timeout: 120000 });
      const listed = (await adminApi("GET", `/api/v1/backups?vm=${vmName}`)).backups;
      expect(listed.length === 2, `API lists ${listed.length} backups of ${vmName}`);
      const [full, incr] = listed;  // oldest first
      expect(full.kind === "full" && incr.kind === "incremental" && incr.parent === full.id, `kinds ${full.kind}, ${incr.kind} (parent ${incr.parent})`);
      mark("the VM page lists them");
      const mine = section.getByRole("table", { name: "Backups of this VM" });
      for (const b of listed) await mine.locator(`tr[data-backup="${b.id}"]`).waitFor();
      expect(await mine.locator("tbody tr").first().getAttribute("data-backup") === incr.id, "the VM's backups newest first");
      await page.screenshot({ path: join(shots, "vm-backups.png"), fullPage: true });

      // The backups page, filtered by the VM (the link from the VM page keeps ?vm=).
      mark("the backups page");
      await section.getByRole("link", { name: new RegExp(`^All backups of ${vmName}`) }).click();
      await page.getByRole("heading", { name: "Backups", exact: true }).first().waitFor();
      expect(new URL(page.url()).search === `?vm=${vmName}`, `URL ${page.url()}`);
      const table = page.getByRole("table", { name: "Backups", exact: true });
      const fullRow = table.locator(`tr[data-backup="${full.id}"]`);
      await fullRow.waitFor();
      expect((await fullRow.textContent()).includes("full") && (await table.locator(`tr[data-backup="${incr.id}"]`).textContent()).includes("incremental"),
        "kind column");
      // Verify: the task's result on the row (chunks checked, no problem), as the API says.
      mark("verify");
      await page.getByRole("button", { name: `Verify backup ${full.id}` }).click();
      const verdict = fullRow.locator("[data-verify]");
      await verdict.waitFor({ timeout: 60000 });
      const vt = (await adminApi("GET", "/api/v1/tasks?order=newest&limit=20")).tasks.find((t) => t.kind === "backup.verify" && t.target_id === full.id);
      const said = await verdict.textContent();
      expect(await verdict.getAttribute("data-verify") === "ok" && vt?.state === "succeeded" && said.includes(`${vt.result.chunks_checked} chunk`),
        `verify: page "${said}", task ${JSON.stringify(vt?.result)}`);
      // Restore into a new VM whose name is taken: the API's 409 next to the name, nothing started.
      mark("restore 409");
      await page.getByRole("button", { name: `Restore backup ${full.id}` }).click();
      const dlg = page.getByRole("dialog", { name: `Restore backup ${full.id}` });
      await dlg.getByLabel("New VM name").fill(vmDelete || vmName);
      // The new VM's disks may go onto a datastore some host mounts (the test's web-ds).
      const onto = await dlg.getByLabel("Disks on").locator("option").allTextContents();
      expect(onto.includes("datastore web-ds") && onto.includes("the host's own store"), `restore: disk places ${JSON.stringify(onto)}`);
      await dlg.getByLabel("Disks on").selectOption("web-ds");
      await dlg.getByRole("button", { name: "Restore", exact: true }).click();
      await dlg.locator("#bk-restore-target-error").waitFor();
      expect(await dlg.getByLabel("New VM name").getAttribute("aria-invalid") === "true", "restore: the name field marked invalid");
      await dlg.getByRole("button", { name: "Cancel" }).click();
      // Delete the incremental behind its dialog.
      mark("delete");
      await page.getByRole("button", { name: `Delete backup ${incr.id}` }).click();
      await page.getByRole("dialog", { name: `Delete backup ${incr.id}?` }).getByRole("button", { name: `Delete ${incr.id}` }).click();
      await page.getByRole("status").filter({ hasText: `deleted ${incr.id}` }).waitFor();
      await table.locator(`tr[data-backup="${incr.id}"]`).waitFor({ state: "detached" });
      expect((await adminApi("GET", `/api/v1/backups?vm=${vmName}`)).backups.length === 1, "the API still lists the deleted backup");
      // Prune: a bad VM name is the API's 400 next to the VM field; then the dry run's preview.
      mark("prune 400");
      await page.locator("#prune-vm").fill("Bad_Name");
      await page.locator("#prune-keep_last").fill("1");
      await page.getByRole("button", { name: "Preview" }).click();
      await page.locator("#prune-vm-error").waitFor();
      mark("prune preview");
      await page.locator("#prune-vm").fill(vmName);
      await page.getByRole("button", { name: "Preview" }).click();
      const preview = page.locator("[data-prune-preview]");
      await preview.getByRole("status").filter({ hasText: "Would keep 1 and delete 0" }).waitFor();
      expect(await preview.getByRole("button", { name: "Delete 0 backups" }).isDisabled(), "nothing to prune, nothing to press");
      expect((await adminApi("GET", `/api/v1/backups?vm=${vmName}`)).backups.length === 1, "a preview deleted something");
      // Schedules: a bad time refused next to it (the form), a taken name (the API's 409), delete.
      mark("schedule");
      const sched = page.locator("strata-backup-schedules");
      await sched.getByLabel("Schedule name").fill("web-nightly");
      await sched.getByLabel("VM", { exact: true }).fill(vmName);
      await sched.getByLabel("Time (UTC)").fill("25:00");
      await sched.getByRole("button", { name: "Create schedule" }).click();
      await sched.locator("#sch-time-error").waitFor();
      await sched.getByLabel("Time (UTC)").fill("03:15");
      await sched.locator("#sch-keep_last").fill("7");
      await sched.getByRole("button", { name: "Create schedule" }).click();
      const row = sched.locator('tr[data-schedule="web-nightly"]');
      await row.waitFor();
      expect((await row.textContent()).includes("last 7") && (await row.textContent()).includes("03:15"), `schedule row: ${await row.textContent()}`);
      const api = (await adminApi("GET", "/api/v1/backup-schedules/web-nightly"));
      expect(api.vm === vmName && api.time === "03:15" && api.retention?.keep_last === 7, `schedule in the API: ${JSON.stringify(api)}`);
      await sched.getByLabel("Schedule name").fill("web-nightly");
      await sched.getByLabel("VM", { exact: true }).fill(vmName);
      await sched.getByLabel("Time (UTC)").fill("04:00");
      await sched.getByRole("button", { name: "Create schedule" }).click();
      await sched.locator("#sch-name-error, p.error").first().waitFor();
      await page.screenshot({ path: join(shots, "backups.png"), fullPage: true });
      await sched.getByRole("button", { name: "Delete schedule web-nightly" }).click();
      await page.getByRole("dialog", { name: "Delete schedule web-nightly?" }).getByRole("button", { name: "Delete web-nightly" }).click();
      await row.waitFor({ state: "detached" });
      // Sync to the configured target: a task followed to its end.
      mark("sync");
      await page.getByRole("button", { name: "Sync now" }).click();
      await page.getByRole("table", { name: "Backup tasks started here" }).locator('tr[data-kind="backup.sync"][data-state="succeeded"]').waitFor({ timeout: 60000 });
     } catch (e) {
      await page.screenshot({ path: join(shots, "backups-failed.png"), fullPage: true }).catch(() => {});
      throw new Error(`at "${at}": ${(e && e.message ? e.message : String(e)).split("\n").slice(0, 3).join(" | ")}`);
     } finally {
      // Back to the VM page whatever happened: the console steps start there.
      await page.goto(url + `/vms/${vmName}`);
      await page.getByRole("heading", { name: `VM ${vmName}` }).waitFor();
     }
    });

    await step("serial console: the guest's ready line, and a typed command runs", async () => {
      await page.getByRole("button", { name: "Open serial console" }).click();
      await page.getByRole("status").filter({ hasText: "console connected" }).waitFor();
      const rows = page.locator(".xterm-rows");
      await rows.filter({ hasText: "STRATA-READY" }).waitFor({ timeout: 90000 });
      await page.locator(".terminal-host").click();
      await page.keyboard.press("Enter");
      await rows.filter({ hasText: "/ #" }).waitFor({ timeout: 30000 });  // the guest's shell
      await page.keyboard.type("echo web-$((6*7))");
      await page.keyboard.press("Enter");
      await rows.filter({ hasText: "web-42" }).waitFor({ timeout: 30000 });
      await page.screenshot({ path: join(shots, "vm-console.png"), fullPage: true });
    });

    await step("serial console: pasted text reaches the guest (Ctrl+Shift+V, the Paste button)", async () => {
      const rows = page.locator(".xterm-rows");
      await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: url });
      await page.evaluate(() => navigator.clipboard.writeText("echo pasted-$((40+3))\n"));
      await page.locator(".terminal-host").click();
      await page.keyboard.press("Control+Shift+V");  // the browser's paste event, read by xterm.js
      await rows.filter({ hasText: "pasted-43" }).waitFor({ timeout: 30000 });
      await page.evaluate(() => navigator.clipboard.writeText("echo button-$((40+4))\n"));
      await page.getByRole("button", { name: "Paste", exact: true }).click();
      await rows.filter({ hasText: "button-44" }).waitFor({ timeout: 30000 });
    });

    await step("graphical console: noVNC connects through the VNC WebSocket and sizes its canvas", async () => {
      await page.getByRole("button", { name: "Open graphical console" }).click();
      await page.locator('strata-graphical-console[data-state="connected"]').waitFor({ timeout: 30000 });
      await page.getByRole("status").filter({ hasText: "display connected" }).waitFor();
      await page.getByRole("button", { name: "Send Ctrl-Alt-Del" }).waitFor();
      // The framebuffer size the server announced in its ServerInit is the canvas's size.
      const size = await page.locator(".vnc-host canvas").evaluate((c) => [c.width, c.height]);
      expect(size[0] > 0 && size[1] > 0, `noVNC canvas is ${size[0]}x${size[1]}`);
      // The guest's screen arrived: the canvas is not one colour (the tiny guest's VGA text:
      // the firmware's lines stay, its kernel writes to ttyS0 only).
      await page.waitForFunction(() => {
        const c = document.querySelector(".vnc-host canvas");
        const ctx = c && c.getContext("2d");
        if (!ctx || !c.width || !c.height) return false;
        const px = ctx.getImageData(0, 0, c.width, c.height).data;
        for (let i = 4; i < px.length; i += 4)
          if (px[i] !== px[0] || px[i + 1] !== px[1] || px[i + 2] !== px[2]) return true;
        return false;
      }, null, { timeout: 20000, polling: 250 });
      // A key combination the browser would keep for itself goes to the guest; the session
      // stays up.
      await page.getByRole("combobox", { name: "Key combination" }).selectOption("Esc");
      await page.getByRole("button", { name: "Send keys" }).click();
      expect(await page.locator("strata-graphical-console").getAttribute("data-state") === "connected",
        "the display session ended after sending keys");
      // Scaling: a screen that fits the panel is drawn 1:1 (not blown up and blurred); in a
      // panel narrower than the screen it is scaled down with its aspect kept, and back.
      const drawn = () => page.locator(".vnc-host canvas").evaluate((c) => {
        const r = c.getBoundingClientRect(), p = c.closest(".vnc-host").getBoundingClientRect();
        return { fbW: c.width, fbH: c.height, w: r.width, h: r.height, pw: p.width, ph: p.height,
          scale: c.closest("strata-graphical-console").dataset.scale };
      });
      let d = await drawn();
      if (d.fbW <= d.pw && d.fbH <= d.ph)
        expect(d.scale === "1:1" && Math.abs(d.w - d.fbW) < 1 && Math.abs(d.h - d.fbH) < 1, `fits, yet drawn ${JSON.stringify(d)}`);
      await page.screenshot({ path: join(shots, "vm-display.png"), fullPage: true });
      await page.setViewportSize({ width: 420, height: 800 });
      await page.waitForFunction(() => document.querySelector("strata-graphical-console")?.dataset.scale === "fit");
      await page.waitForFunction(() => {
        const c = document.querySelector(".vnc-host canvas");
        return c.getBoundingClientRect().width <= c.closest(".vnc-host").getBoundingClientRect().width + 0.5;
      });
      d = await drawn();
      expect(d.w < d.fbW && Math.abs(d.w / d.h - d.fbW / d.fbH) < 0.02, `scaled down wrongly: ${JSON.stringify(d)}`);
      await page.screenshot({ path: join(shots, "vm-display-narrow.png"), fullPage: true });
      await page.setViewportSize({ width: 1280, height: 800 });
      d = await drawn();
      if (d.fbW <= d.pw && d.fbH <= d.ph)
        await page.waitForFunction(() => document.querySelector("strata-graphical-console")?.dataset.scale === "1:1");
    });

    await step("VM metrics charts: history, then new points from the host's metrics stream (also with both consoles open)", async () => {
      const charts = page.locator("strata-metrics-charts .charts");
      await page.locator('strata-metrics-charts .charts[data-live="yes"]').waitFor({ timeout: 15000 });
      const cpu = page.locator('strata-metrics-charts figure[data-chart="cpu"]');
      // The serial and graphical consoles of this page are still open: the charts follow
      // the stream regardless. No reload and no request: the next samples arrive on it.
      expect(await page.locator("strata-serial-console, strata-graphical-console").count() === 2, "both consoles open");
      await chartMoves(page, "cpu");
      await chartMoves(page, "mem");
      expect(await charts.locator("svg path.line").count() === 2, "a CPU and a memory line");
      const label = await cpu.locator("svg").getAttribute("aria-label");
      expect(/^CPU used: [\d.]+ vCPU/.test(label ?? ""), `chart label ${label}`);
    });
  }

  if (vmName) {
    // The tiny guest's shell is on /dev/console: a VM whose console is tty0 (the screen and
    // keyboard the VNC display shows) runs it there. What is typed into its graphical console
    // must arrive whole: the command sends a 260-character line to the serial port, read
    // here from the console WebSocket and compared to the letter.
    await step("graphical console: paced typing loses no character (a 270-character line with capitals, read back from the serial port)", async () => {
      const typer = "web-type";
      await adminApi("POST", "/api/v1/vms", { name: typer, vcpus: 1, memory_mib: 128, kernel: "tiny-kernel",
        initrd: "tiny-initrd", cmdline: `${cmdline} console=tty0`, start: true });
      try {
        await page.goto(url + `/vms/${typer}`);
        await page.locator("h1 .badge.state-running").waitFor({ timeout: 60000 });
        await page.evaluate((name) => {
          window.strataSerial = "";
          const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/v1/vms/${name}/console`);
          ws.binaryType = "arraybuffer";
          const text = new TextDecoder();
          ws.onmessage = (m) => { window.strataSerial += typeof m.data === "string" ? m.data : text.decode(m.data, { stream: true }); };
          window.strataSerialWs = ws;
        }, typer);
        await page.getByRole("button", { name: "Open graphical console" }).click();
        const display = page.locator("strata-graphical-console");
        await page.locator('strata-graphical-console[data-state="connected"]').waitFor({ timeout: 30000 });
        const typeText = async (text) => {
          await page.getByLabel("Type text into the guest").fill(text);
          await page.getByRole("button", { name: "Type", exact: true }).click();
          // Done when every key went out (the Type button is off until then).
          await page.waitForFunction(() => document.querySelector("strata-graphical-console")?.dataset.typed !== undefined &&
            !document.querySelector("strata-graphical-console form.vnc-type button")?.disabled, null, { timeout: 60000 });
        };
        // The guest's shell is up once a short probe comes back (typed again until then).
        let up = false;
        for (let i = 0; i < 30 && !up; i++) {
          await display.evaluate((e) => { delete e.dataset.typed; });
          await typeText("\necho probe-$((2*3)) >/dev/ttyS0\n");
          up = await page.waitForFunction(() => window.strataSerial.includes("probe-6"), null, { timeout: 3000 }).then(() => true, () => false);
        }
        if (!up) {
          await page.screenshot({ path: join(shots, "vm-display-typed.png"), fullPage: true });
          const tail = await page.evaluate(() => window.strataSerial.slice(-300));
          throw new Error(`the guest's shell on tty0 never answered a typed probe; serial: ${JSON.stringify(tail)}`);
        }
        // Capitals (QEMU adds a Shift: 6 bytes of scan codes a key), digits, lower case.
        const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        const line = Array.from({ length: 260 }, (_, i) => alphabet[(i * 7 + 3) % alphabet.length]).join("");
        const command = `echo PACED-$((6*7))-${line}-END >/dev/ttyS0\n`;
        await display.evaluate((e) => { delete e.dataset.typed; });
        await typeText("\n" + command);
        const typed = Number(await display.getAttribute("data-typed"));
        expect(typed === command.length + 1, `typed ${typed} of ${command.length + 1} keys`);
        const want = `PACED-42-${line}-END`;
        const arrived = await page.waitForFunction((w) => window.strataSerial.includes(w), want, { timeout: 30000 }).then(() => true, () => false);
        if (!arrived) {
          await page.screenshot({ path: join(shots, "vm-display-typed.png"), fullPage: true });
          const got = await page.evaluate(() => (window.strataSerial.match(/PACED-[^\r\n]*/g) ?? []).pop() ?? "(no PACED line)");
          throw new Error(`the guest got a different line: ${got.length} characters, want ${want.length}: ${got}`);
        }
        await page.screenshot({ path: join(shots, "vm-display-typed.png"), fullPage: true });
        await page.evaluate(() => window.strataSerialWs.close());
      } finally {
        await adminApi("POST", `/api/v1/vms/${typer}/stop`, { force: true }).catch(() => {});
        await adminApi("DELETE", `/api/v1/vms/${typer}`).catch(() => {});
        // Gone before the next steps count the host's VMs.
        for (let i = 0; i < 120; i++) {
          if ((await fetch(url + `/api/v1/vms/${typer}`, { headers: { Authorization: `Bearer ${adminToken}` } })).status === 404) break;
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    });
  }

  if (hostName) {
    await step("host page: inventory, capacity, its VMs", async () => {
      await page.goto(url + `/hosts/${hostName}`);
      await page.getByRole("heading", { name: `Host ${hostName}` }).waitFor();
      await page.getByRole("table", { name: "NUMA nodes" }).locator("tbody tr").first().waitFor();
      await page.getByRole("table", { name: "Host network interfaces" }).getByRole("rowheader", { name: "lo" }).waitFor();
      // The capacity bars come with the summary (the rest of the page does not wait for it).
      await page.locator('meter[aria-label^="CPU allocated:"]').waitFor();
      for (const m of ["CPU allocated", "Memory allocated"]) {
        const n = await page.locator(`meter[aria-label^="${m}:"]`).count();
        expect(n === 1, `expected one "${m}" meter, saw ${n}`);
      }
      // Its datastores as the summary reports them (the agent's statvfs of the folder).
      if (datastore) {
        const s = await (await page.request.get(url + "/api/v1/summary")).json();
        const mine = s.hosts.items.find((h) => h.name === hostName);
        const d = (mine?.datastores ?? []).find((x) => x.name === datastore);
        expect(d && d.total_bytes > 0 && d.used_bytes + d.free_bytes === d.total_bytes, `summary datastore: ${JSON.stringify(mine?.datastores)}`);
        await page.locator(`[data-datastore="${datastore}"] meter[aria-label^="Datastore ${datastore} used:"]`).waitFor();
      }
      if (vmName) await page.getByRole("table", { name: "VMs on this host" }).locator(`tr[data-vm="${vmName}"]`).waitFor();
      await page.getByRole("list", { name: "Events of this host" }).locator("li", { hasText: "host." }).first().waitFor();
      // Live charts: the history, then points added from the metrics stream.
      await page.locator('strata-metrics-charts .charts[data-live="yes"]').waitFor({ timeout: 15000 });
      await chartMoves(page, "mem");
      await page.getByRole("heading", { name: "Latest metrics" }).locator("xpath=..").locator("dt", { hasText: "cpu_busy" }).waitFor();
      const mem = await page.locator('figure[data-chart="mem"] svg').getAttribute("aria-label");
      expect(/^Memory used: [\d.]+ [KMGT]?i?B/.test(mem ?? ""), `memory chart label ${mem}`);
      await page.screenshot({ path: join(shots, "host.png"), fullPage: true });
    });

    if (vmName) await step("host page: the capacity bars follow its VMs' events (the summary read again, not the page)", async () => {
      await page.goto(url + `/hosts/${hostName}`);
      const cpu = page.locator('section[aria-labelledby="host-cap-h"] .capacity .cap-text').first();
      const allocated = async () => (await adminApi("GET", "/api/v1/summary")).hosts.items.find((h) => h.name === hostName).allocated_vcpus;
      const a = await allocated();
      await cpu.filter({ hasText: new RegExp(`^${a} / \\d+ vCPU allocated`) }).waitFor();
      await page.locator(".live.on").waitFor();
      const asked = [];
      const listen = (r) => asked.push(new URL(r.url()).pathname + new URL(r.url()).search);
      page.on("request", listen);
      try {
        // Another user creates a 3-vCPU VM (placed on this host, the only one) and deletes it.
        await adminApi("POST", "/api/v1/vms", { name: "web-cap", vcpus: 3, memory_mib: 64, kernel: "tiny-kernel", vnc: false, start: false });
        await cpu.filter({ hasText: new RegExp(`^${a + 3} / \\d+ vCPU allocated`) }).waitFor({ timeout: 30000 });
        await page.screenshot({ path: join(shots, "host-capacity-live.png"), fullPage: true });
        await adminApi("DELETE", "/api/v1/vms/web-cap");
        await cpu.filter({ hasText: new RegExp(`^${a} / \\d+ vCPU allocated`) }).waitFor({ timeout: 30000 });
      } finally {
        page.off("request", listen);
        await adminApi("DELETE", "/api/v1/vms/web-cap").catch(() => {});
      }
      const summaries = asked.filter((p) => p === "/api/v1/summary").length;
      const hostReads = asked.filter((p) => p === `/api/v1/hosts/${hostName}` || p.startsWith(`/api/v1/events?target=host`)).length;
      expect(summaries >= 2, `the summary was asked ${summaries} times: ${asked.join(" ")}`);
      expect(hostReads === 0, `VM events read the host page again: ${asked.join(" ")}`);
    });

    if (vmName) await step("host page: its VMs paged, sorted and filtered by the server", async () => {
      const want = (await (await page.request.get(url + `/api/v1/vms?host=${hostName}&sort=name&limit=0`)).json()).vms.map((v) => v.name);
      expect(want.length >= 2, `the host holds ${want}`);
      await page.goto(url + `/hosts/${hostName}?limit=1`);
      const table = page.getByRole("table", { name: "VMs on this host" });
      const pager = page.getByRole("navigation", { name: "Pages of this host's VMs" });
      const seen = [];
      for (let i = 0; i < want.length; i++) {
        await pager.getByRole("status").filter({ hasText: `Page ${i + 1} ` }).waitFor();
        await table.locator("tbody tr").first().waitFor();
        expect(await table.locator("tbody tr").count() === 1, "limit=1 shows one VM");
        seen.push(await table.locator("tbody tr").first().getAttribute("data-vm"));
        if (i + 1 < want.length) await pager.getByRole("button", { name: "Next page" }).click();
      }
      expect(JSON.stringify(seen) === JSON.stringify(want), `pages showed ${seen}, the API ${want}`);
      expect(await pager.getByRole("button", { name: "Next page" }).isDisabled(), "Next page after the last VM");
      await pager.getByRole("button", { name: "Previous page" }).click();
      await table.locator(`tr[data-vm="${want[want.length - 2]}"]`).waitFor();
      // Name descending, 50 a page, then a name filter; all in the URL.
      await page.getByLabel("Per page").selectOption("50");
      await page.getByRole("button", { name: "Sort by name descending" }).click();
      await page.waitForFunction(([n, first]) => {
        const rows = document.querySelectorAll("table[aria-label='VMs on this host'] tbody tr");
        return rows.length === n && rows[0].getAttribute("data-vm") === first;
      }, [want.length, want[want.length - 1]]);
      const order = await table.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.dataset.vm));
      expect(JSON.stringify(order) === JSON.stringify([...want].reverse()), `descending: ${order}`);
      await page.getByLabel("Name", { exact: true }).fill(vmName);
      await page.getByRole("button", { name: "Apply" }).click();
      await page.waitForFunction((v) => [...document.querySelectorAll("table[aria-label='VMs on this host'] tbody tr")].map((r) => r.dataset.vm).every((n) => n.includes(v)), vmName);
      expect(page.url().includes(`name=${vmName}`) && page.url().includes("sort=-name"), `filters not in the URL: ${page.url()}`);
      await page.reload();
      await table.locator(`tr[data-vm="${vmName}"]`).waitFor();
      expect(await page.getByLabel("Name", { exact: true }).inputValue() === vmName, "the name filter after a reload");
    });
  }

  if (hostName) {
    // Clusters: the tree (cluster -> hosts -> VMs), a cluster page with its baseline and
    // why, creating clusters, moving the host (a fixed baseline it cannot offer: the 409's
    // message), setting a baseline (409 too), the hosts list's cluster column.
    await step("inventory and clusters: the tree, a cluster page, create, move a host, the 409s", async () => {
      await page.goto(url + "/");
      await page.getByRole("link", { name: "Inventory" }).click();
      await page.getByRole("heading", { name: "Inventory" }).waitFor();
      const tree = page.getByRole("list", { name: "Clusters, hosts and VMs" });
      const hostNode = tree.locator(`li[data-tree-cluster="default"] li[data-tree-host="${hostName}"]`);
      await hostNode.waitFor();
      if (vmName) {
        await page.getByRole("button", { name: `VMs of ${hostName}` }).click();
        await hostNode.locator(`li[data-tree-vm="${vmName}"] a`).waitFor();
        expect(await page.getByRole("button", { name: `VMs of ${hostName}` }).getAttribute("aria-expanded") === "true", "host node not expanded");
      }
      // Create two clusters: auto, and a fixed model no TCG host offers (AVX2 and more).
      const create = async (name, baseline) => {
        await page.getByLabel("Name", { exact: true }).fill(name);
        await page.getByLabel("CPU baseline").fill(baseline);
        await page.getByRole("button", { name: "Create cluster" }).click();
        await page.getByRole("table", { name: "Clusters" }).locator(`tr[data-cluster="${name}"]`).waitFor();
      };
      await create("web-rack", "");
      await create("web-fixed", "Haswell-v4");
      await tree.locator('li[data-tree-cluster="web-rack"]', { hasText: "no hosts" }).waitFor();
      await page.getByLabel("Name", { exact: true }).fill("web-rack");
      await page.getByRole("button", { name: "Create cluster" }).click();
      await page.getByRole("alert").filter({ hasText: "web-rack" }).waitFor();  // the 409 "exists"
      await page.screenshot({ path: join(shots, "inventory.png"), fullPage: true });
      // The fixed cluster refuses the host: the API's message (what the host lacks).
      await page.goto(url + "/clusters/web-fixed");
      await page.getByRole("heading", { name: "Cluster web-fixed" }).waitFor();
      await page.locator("[data-cluster-setting]", { hasText: "Haswell-v4" }).waitFor();
      await page.getByLabel("Move host").selectOption(hostName);
      await page.getByRole("button", { name: "Move to web-fixed" }).click();
      const refused = await page.getByRole("alert").textContent();
      const direct = await fetch(url + `/api/v1/hosts/${hostName}`, { method: "PATCH",
        headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" }, body: JSON.stringify({ cluster: "web-fixed" }) });
      const envelope = await direct.json();
      expect(direct.status === 409 && refused.includes(envelope.error.message), `move refused: page "${refused}", API ${direct.status} ${JSON.stringify(envelope)}`);
      // The auto cluster takes it: its baseline in force and why, the host offering it.
      await page.goto(url + "/clusters/web-rack");
      await page.getByLabel("Move host").selectOption(hostName);
      await page.getByRole("button", { name: "Move to web-rack" }).click();
      await page.getByRole("status").filter({ hasText: `${hostName} moved to web-rack` }).waitFor();
      const hostsTable = page.getByRole("table", { name: "Hosts of this cluster" });
      await hostsTable.locator(`tr[data-host="${hostName}"]`).waitFor();
      const api = await adminApi("GET", "/api/v1/clusters/web-rack");
      const model = api.cpu_model;
      if (model) await page.locator("[data-cluster-model]", { hasText: model }).waitFor();
      await page.waitForFunction((why) => document.querySelector("[data-cluster-reason]")?.textContent === why, api.cpu_reason);
      expect(api.cpu_reason.length > 0, "no reason given for the baseline");
      if (model) await hostsTable.locator(`tr[data-host="${hostName}"] td`, { hasText: /^yes$/ }).waitFor();
      // A fixed baseline its host cannot offer: refused, the envelope's message shown.
      await page.getByLabel("New baseline").fill("Haswell-v4");
      await page.getByRole("button", { name: "Set baseline" }).click();
      await page.getByRole("alert").filter({ hasText: hostName }).waitFor();
      await page.screenshot({ path: join(shots, "cluster.png"), fullPage: true });
      // The hosts list says where the host is; then it goes back to default.
      await page.goto(url + "/hosts");
      await page.locator(`tr[data-host="${hostName}"] td[data-cluster="web-rack"]`).waitFor();
      await page.goto(url + "/clusters/default");
      await page.getByLabel("Move host").selectOption(hostName);
      await page.getByRole("button", { name: "Move to default" }).click();
      await page.getByRole("table", { name: "Hosts of this cluster" }).locator(`tr[data-host="${hostName}"]`).waitFor();
      expect((await adminApi("GET", `/api/v1/hosts/${hostName}`)).cluster === "default", "host not back in default");
    });
  }

  if (hostName) {
    // Maintenance: the evacuation plan (the scheduler's dry run), an evacuation refused with
    // the API's message (the one host's running VM has nowhere to go), maintenance on and
    // off, host labels added and removed.
    await step("host page: evacuation plan, maintenance, labels", async () => {
      await page.goto(url + `/hosts/${hostName}`);
      const maint = page.locator('section[aria-labelledby="host-maint-h"]');
      await maint.waitFor();
      await maint.getByRole("button", { name: "Show the evacuation plan" }).click();
      const plan = page.getByRole("table", { name: "Evacuation plan" });
      await plan.waitFor();
      const api = await adminApi("POST", "/api/v1/plan/host-down", { hosts: [hostName] });
      await maint.getByRole("status").filter({ hasText: api.summary }).waitFor();
      for (const m of [...api.moves, ...api.stays]) await plan.locator(`tr[data-plan-vm="${m.vm}"]`).waitFor();
      if (vmName) {
        expect(api.stays.some((x) => x.vm === vmName), `plan: ${JSON.stringify(api)}`);
        await maint.getByRole("button", { name: "Evacuate and enter maintenance" }).click();
        await maint.getByRole("alert").filter({ hasText: vmName }).waitFor();
        expect((await adminApi("GET", `/api/v1/hosts/${hostName}`)).maintenance === false, "a refused evacuation left the host in maintenance");
      }
      await maint.getByRole("button", { name: "Enter maintenance without moving VMs" }).click();
      await page.locator('section[data-maintenance="on"]').waitFor();
      await page.getByRole("button", { name: "Leave maintenance" }).click();
      await page.locator('section[data-maintenance="off"]').waitFor();
      const labels = page.locator("[data-host-labels]");
      await page.getByLabel("New label").fill("rack=r1");
      await page.getByRole("button", { name: "Add label" }).click();
      await labels.locator(".label", { hasText: "rack=r1" }).waitFor();
      expect((await adminApi("GET", `/api/v1/hosts/${hostName}`)).labels?.rack === "r1", "host label not set");
      await page.screenshot({ path: join(shots, "host-maintenance.png"), fullPage: true });
      await page.getByRole("button", { name: "Remove label rack" }).click();
      await labels.locator(".label", { hasText: "rack=r1" }).waitFor({ state: "detached" });
      expect((await adminApi("GET", `/api/v1/hosts/${hostName}`)).labels?.rack === undefined, "host label not removed");
    });

    await step("tasks and events pages (filters, newest first), the global search", async () => {
      await page.getByRole("link", { name: "Tasks" }).click();
      const tasks = page.getByRole("table", { name: "Tasks" });
      await tasks.locator('tr[data-kind="vm.create"]').first().waitFor();
      await page.getByLabel("State", { exact: true }).selectOption("succeeded");
      await page.waitForFunction(() => location.search.includes("state=succeeded"));
      await page.waitForFunction(() => {
        const rows = [...document.querySelectorAll("table[aria-label='Tasks'] tbody tr")];
        return rows.length > 0 && rows.every((r) => r.querySelector(".badge")?.textContent === "succeeded");
      });
      await page.getByRole("link", { name: "Events" }).click();
      const events = page.getByRole("table", { name: "Events" });
      await events.locator("tbody tr").first().waitFor();
      // Newest first, as the API's newest page (taken after the page: it may only be newer).
      const shown = await events.locator("tbody tr").evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
      expect(shown.every((x, i) => i === 0 || shown[i - 1] > x), `not newest first: ${shown.slice(0, 10)}`);
      const newest = (await adminApi("GET", "/api/v1/events?before=0&limit=1")).events[0].seq;
      expect(shown[0] <= newest && shown.length > 1, `first row ${shown[0]}, API newest ${newest}`);
      if (vmName) {
        await page.getByLabel("Target").fill(`vm/${vmName}`);
        await page.getByLabel("Action").fill("vm.start");
        await page.getByRole("button", { name: "Apply" }).click();
        await page.waitForFunction(() => location.search.includes("action=vm.start"));
        await page.waitForFunction((t) => {
          const rows = [...document.querySelectorAll("table[aria-label='Events'] tbody tr")];
          return rows.length > 0 && rows.every((r) => r.children[3].textContent === t && r.children[2].textContent === "vm.start");
        }, `vm/${vmName}`);
      }
      await page.screenshot({ path: join(shots, "events.png"), fullPage: true });
      // The search box: a VM by name, by label, and the host.
      const search = async (q) => {
        await page.getByRole("searchbox", { name: "Search VMs, hosts, clusters and images" }).fill(q);
        await page.getByRole("searchbox", { name: "Search VMs, hosts, clusters and images" }).press("Enter");
        await page.getByRole("heading", { name: `Search: ${q}` }).waitFor();
      };
      if (vmName) {
        await search(vmName);
        await page.locator(`li[data-found-vm="${vmName}"]`).waitFor();
        await search("tier=web");
        await page.locator(`li[data-found-vm="${vmName}"]`).waitFor();
      }
      // The host and an image by name are asked of the server (the lists' name filter): the
      // request carries name=, and its answer (not a list read whole) holds what is shown.
      const searchAsking = async (q, list) => {
        const answer = page.waitForResponse((r) => {
          const u = new URL(r.url());
          return u.pathname === `/api/v1/${list}` && u.searchParams.get("name") === q.toLowerCase();
        });
        await search(q);
        const r = await answer;
        expect(r.status() === 200, `GET /api/v1/${list}?name=${q}: ${r.status()}`);
        return (await r.json())[list].map((x) => x.name);
      };
      if (hostName) {
        const found = await searchAsking(hostName.toUpperCase(), "hosts");
        expect(found.length === 1 && found[0] === hostName, `hosts?name=${hostName.toUpperCase()} answered ${found}`);
        await page.locator(`li[data-found-host="${hostName}"]`).waitFor();
      }
      const images = await searchAsking("tiny-k", "images");
      expect(!vmName || (images.length === 1 && images[0] === "tiny-kernel"), `images?name=tiny-k answered ${images}`);
      if (vmName) await page.locator('li[data-found-image="tiny-kernel"]').waitFor();
      await page.screenshot({ path: join(shots, "search.png"), fullPage: true });
    });
  }

  if (vmDelete) {
    await step("delete a VM from its page, with confirmation", async () => {
      await page.goto(url + `/vms/${vmDelete}`);
      await page.getByRole("button", { name: "Delete…" }).click();
      const dialog = page.getByRole("dialog", { name: `Delete VM ${vmDelete}?` });
      await dialog.waitFor();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "hidden" });
      await page.getByRole("button", { name: "Delete…" }).click();
      await dialog.getByRole("button", { name: `Delete ${vmDelete}` }).click();
      await page.getByRole("status").filter({ hasText: `There is no VM named ${vmDelete}` }).waitFor({ timeout: 60000 });
    });
  }

  await step("images page: upload with progress, delete, the 409 of an image in use", async () => {
    await page.getByRole("link", { name: "Images" }).click();
    await page.getByRole("heading", { name: "Images" }).waitFor();
    const table = page.getByRole("table", { name: "Images" });
    if (vmName) await table.locator('tr[data-image="tiny-base"]').waitFor();
    await page.getByLabel("File").setInputFiles({ name: "Web Upload.bin", mimeType: "application/octet-stream", buffer: Buffer.alloc(256 * 1024, 7) });
    expect(await page.getByLabel("Image name").inputValue() === "web-upload-bin", "name suggested from the file");
    await page.getByLabel("Image name").fill("web-upload");
    await page.getByLabel("Kind").selectOption("kernel");
    await page.getByRole("button", { name: "Upload" }).click();
    await page.getByRole("status").filter({ hasText: "uploaded web-upload" }).waitFor();
    await table.locator('tr[data-image="web-upload"]', { hasText: "kernel" }).waitFor();
    await page.screenshot({ path: join(shots, "images.png"), fullPage: true });
    const dialog = page.getByRole("dialog");
    if (vmName) {
      await page.getByRole("button", { name: "Delete image tiny-base" }).click();
      await dialog.getByRole("button", { name: "Delete tiny-base" }).click();
      await page.getByRole("alert").filter({ hasText: "tiny-base is in use and was not deleted" }).waitFor();
    }
    await page.getByRole("button", { name: "Delete image web-upload" }).click();
    await dialog.getByRole("button", { name: "Delete web-upload" }).click();
    await page.getByRole("status").filter({ hasText: "deleted web-upload" }).waitFor();
    await table.locator('tr[data-image="web-upload"]').waitFor({ state: "detached" });
  });

  await step("tokens page: create (secret once), delete, a join token", async () => {
    await page.getByRole("link", { name: "Tokens" }).click();
    await page.getByRole("heading", { name: "Tokens", exact: true }).waitFor();
    const table = page.getByRole("table", { name: "API tokens" });
    await page.getByLabel("Token name").fill("web-temp");
    await page.getByLabel("Role").selectOption("operator");
    await page.getByLabel("Lifetime").fill("8h");
    await page.getByRole("button", { name: "Create token" }).click();
    await page.locator("code.secret", { hasText: /^sta_/ }).waitFor();
    await table.locator('tr[data-token="web-temp"]', { hasText: "operator" }).waitFor();
    await page.getByRole("button", { name: "I have copied it" }).click();
    page.once("dialog", (d) => void d.accept());
    await page.getByRole("button", { name: "Delete token web-temp" }).click();
    await table.locator('tr[data-token="web-temp"]').waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Create join token" }).click();
    await page.getByRole("status").filter({ hasText: "created a join token" }).waitFor();
    await page.getByRole("table", { name: "Join tokens" }).locator("tbody tr").first().waitFor();
    await page.screenshot({ path: join(shots, "tokens.png"), fullPage: true });
  });

  if (vmName) {
    await step("bulk actions: select on the page, per-item results, delete behind a dialog", async () => {
      await page.goto(url + "/vms");
      const table = page.getByRole("table", { name: "Virtual machines" });
      await table.locator(`tr[data-vm="${wizardVm}"]`).waitFor();
      if (vmDelete) await table.locator(`tr[data-vm="${vmDelete}"]`).waitFor({ state: "detached" });
      const all = page.getByLabel("Select all VMs on this page");
      const bar = page.getByRole("toolbar", { name: "Selected VMs" });
      await all.check();
      await bar.getByRole("status").filter({ hasText: "2 selected" }).waitFor();
      await page.getByLabel(`Select ${vmName}`).uncheck();
      await bar.getByRole("status").filter({ hasText: "1 selected" }).waitFor();
      expect(await all.evaluate((e) => e.indeterminate), "select-all is not indeterminate with 1 of 2");
      await page.getByLabel(`Select ${vmName}`).check();
      // Someone else deletes one of them meanwhile: its start fails, the other's succeeds.
      const gone = await page.evaluate(async (n) => {
        const s = await (await fetch("/api/v1/session")).json();
        return (await fetch(`/api/v1/vms/${n}`, { method: "DELETE", headers: { "X-CSRF-Token": s.csrf_token } })).status;
      }, wizardVm);
      expect(gone === 202, `DELETE ${wizardVm}: ${gone}`);
      await bar.getByRole("button", { name: "Start selected" }).click();
      await page.getByRole("heading", { name: "start: 1 of 2 succeeded, 1 failed" }).waitFor();
      await page.locator(`li[data-result="${vmName}"].ok`, { hasText: "accepted" }).waitFor();
      await page.locator(`li[data-result="${wizardVm}"].bad`, { hasText: /failed: .*(being deleted|not found|no VM)/i }).waitFor();
      // Add a label to the selection (web-1 only now): PATCH per VM, the list's label filter sees it.
      await page.getByRole("button", { name: "Dismiss" }).click();
      await all.click();  // every shown row was selected: this clears the selection
      await bar.getByRole("status").filter({ hasText: "0 selected" }).waitFor();
      await page.getByLabel(`Select ${vmName}`).check();
      await page.getByLabel("New label").fill("bulk=yes");
      await bar.getByRole("button", { name: "Add label to selected" }).click();
      await page.getByRole("heading", { name: /^add label bulk=yes: 1 of \d succeeded/ }).waitFor();
      await page.locator(`li[data-result="${vmName}"].ok`).waitFor();
      const labelled = await page.evaluate(async () => (await (await fetch("/api/v1/vms?label=bulk%3Dyes")).json()).vms.map((v) => v.name));
      expect(JSON.stringify(labelled) === JSON.stringify([vmName]), `label filter bulk=yes: ${labelled}`);
      // Migrate the selection: the one host has nowhere to send it, said per VM.
      await bar.getByRole("button", { name: "Migrate selected" }).click();
      await page.getByRole("heading", { name: "migrate: 0 of 1 succeeded, 1 failed" }).waitFor();
      await page.locator(`li[data-result="${vmName}"].bad`, { hasText: "failed: " }).waitFor();
      await page.screenshot({ path: join(shots, "vms-bulk.png"), fullPage: true });
      // Delete asks first (Cancel here: the viewer's checks below still need the VM).
      await bar.getByRole("button", { name: "Delete selected…" }).click();
      const dialog = page.getByRole("dialog", { name: /^Delete \d VMs?\?$/ });
      await dialog.waitFor();
      await dialog.getByRole("button", { name: "Cancel" }).click();
      await dialog.waitFor({ state: "hidden" });
      await table.locator(`tr[data-vm="${wizardVm}"]`).waitFor({ state: "detached", timeout: 30000 });
    });
  }

  if (vmName) await step("a VM created with vnc false has no graphical console on its page", async () => {
    const created = await page.evaluate(async () => {
      const { csrf_token } = await (await fetch("/api/v1/session")).json();
      const r = await fetch("/api/v1/vms", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf_token },
        body: JSON.stringify({ name: "web-novnc", vcpus: 1, memory_mib: 64, kernel: "tiny-kernel", vnc: false, start: false }) });
      return [r.status, (await r.json()).vm?.spec?.vnc];
    });
    expect((created[0] === 201 || created[0] === 202) && created[1] === false, `create answered ${JSON.stringify(created)}`);
    await page.goto(url + "/vms/web-novnc");
    await page.getByRole("heading", { name: "Spec" }).waitFor();
    if (hostName) await page.getByRole("button", { name: "Open serial console" }).waitFor();
    expect(await page.getByRole("button", { name: "Open graphical console" }).count() === 0, "a graphical console button");
    expect(await page.getByRole("heading", { name: "Graphical console" }).count() === 0, "a graphical console section");
    const del = await page.evaluate(async () => {
      const { csrf_token } = await (await fetch("/api/v1/session")).json();
      return (await fetch("/api/v1/vms/web-novnc", { method: "DELETE", headers: { "X-CSRF-Token": csrf_token } })).status;
    });
    expect(del < 300, `delete answered ${del}`);
  });

  // Live events re-render the lists: the VM being looked at must stay where it is on the
  // screen, keep its focus, and a list scrolled down must not jump to the top. A short
  // window (480 px) makes a list of 24 VMs long enough to scroll.
  if (vmName) await step("lists keep their scroll position and focus when live events refresh them", async () => {
    const api = async (method, path, body) => {
      const r = await fetch(url + path, { method, headers: { Authorization: `Bearer ${adminToken}`, "Content-Type": "application/json" },
        body: body ? JSON.stringify(body) : undefined });
      if (r.status >= 300) throw new Error(`${method} ${path}: HTTP ${r.status} ${await r.text()}`);
    };
    const vm = (name) => ({ name, vcpus: 1, memory_mib: 64, kernel: "tiny-kernel", vnc: false, start: false });
    const names = Array.from({ length: 24 }, (_, i) => `scroll-${String(10 + i * 2).padStart(2, "0")}`);
    const made = [];
    try {
      for (const n of names) { await api("POST", "/api/v1/vms", vm(n)); made.push(n); }
      const small = await browser.newContext({ viewport: { width: 1280, height: 480 } });
      const p = await small.newPage();
      p.setDefaultTimeout(15000);
      await p.goto(url + "/vms?name=scroll-&limit=100");
      await p.getByLabel("API token", { exact: true }).fill(adminToken);
      await p.getByRole("button", { name: "Log in" }).click();
      const table = p.getByRole("table", { name: "Virtual machines" });
      await table.locator(`tr[data-vm="${names.at(-1)}"]`).waitFor();
      await p.locator(".live.on").waitFor();
      // scroll-40 near the middle of the window, its Start button focused.
      const watched = "scroll-40";
      const button = p.getByRole("button", { name: `Start ${watched}` });
      await button.focus();
      await p.evaluate((n) => {
        const r = document.querySelector(`tr[data-vm="${n}"]`).getBoundingClientRect();
        window.scrollBy(0, r.top - 240);
      }, watched);
      const where = () => p.evaluate((n) => ({
        y: window.scrollY,
        top: Math.round(document.querySelector(`tr[data-vm="${n}"]`).getBoundingClientRect().top),
        focus: document.activeElement?.getAttribute("aria-label") ?? "",
      }), watched);
      const before = await where();
      expect(before.y > 200 && before.focus === `Start ${watched}`, `set-up: ${JSON.stringify(before)}`);
      const same = (now, what, exactY) => {
        expect(Math.abs(now.top - before.top) <= 1, `${what}: ${watched} moved on the screen: ${JSON.stringify(before)} -> ${JSON.stringify(now)}`);
        expect(now.focus === before.focus, `${what}: focus went from "${before.focus}" to "${now.focus}"`);
        if (exactY) expect(now.y === before.y, `${what}: scroll offset ${before.y} -> ${now.y}`);
      };
      // A label on the watched VM and a VM created after it: rows change, nothing moves.
      await api("PATCH", `/api/v1/vms/${watched}`, { labels: { seen: "yes" } });
      await api("POST", "/api/v1/vms", vm("scroll-99")); made.push("scroll-99");
      await table.locator('tr[data-vm="scroll-99"]').waitFor();
      await p.waitForTimeout(400);  // the debounced refresh after the last event
      same(await where(), "label + VM created below", true);
      // A VM created above the window: the watched row stays where it is on the screen
      // (the page scrolls by the new row's height), and keeps the focus.
      await api("POST", "/api/v1/vms", vm("scroll-00")); made.push("scroll-00");
      await table.locator('tr[data-vm="scroll-00"]').waitFor();
      await p.waitForTimeout(400);
      same(await where(), "VM created above", false);
      // A VM deleted above the window: the same.
      await api("DELETE", "/api/v1/vms/scroll-12");
      await table.locator('tr[data-vm="scroll-12"]').waitFor({ state: "detached", timeout: 30000 });
      await p.waitForTimeout(400);
      same(await where(), "VM deleted above", false);
      await p.screenshot({ path: join(shots, "vms-scrolled.png") });
      await small.close();
    } finally {
      for (const n of made) await api("DELETE", `/api/v1/vms/${n}`).catch(() => {});
    }
  });

  await step("logout ends the session", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("API token", { exact: true }).waitFor();
    const r = await page.evaluate(async () => (await fetch("/api/v1/vms")).status);
    expect(r === 401, `GET /api/v1/vms after logout answered ${r}`);
  });
  await context.close();

  const viewer = await newPage();
  await step("a viewer sees no start/stop buttons, and a forced request is refused", async () => {
    const p = viewer.page;
    await p.goto(url + "/vms");
    await p.getByLabel("API token", { exact: true }).fill(viewerToken);
    await p.getByRole("button", { name: "Log in" }).click();
    await p.getByRole("table", { name: "Virtual machines" }).waitFor();
    if (vmName) await p.locator(`tr[data-vm="${vmName}"]`).waitFor();
    const buttons = await p.getByRole("button", { name: /^(Start|Stop) / }).count();
    expect(buttons === 0, `viewer sees ${buttons} start/stop buttons`);
    const boxes = await p.getByRole("checkbox").count();
    const bulk = await p.getByRole("toolbar", { name: "Selected VMs" }).count();
    expect(boxes === 0 && bulk === 0, `viewer sees ${boxes} row checkboxes and ${bulk} bulk toolbars`);
    expect(await p.getByRole("link", { name: "Create VM…" }).count() === 0, "viewer sees Create VM");
    expect(await p.getByRole("link", { name: "Tokens" }).count() === 0, "viewer sees the Tokens page");
    await p.getByRole("link", { name: "Images" }).click();
    await p.getByRole("table", { name: "Images" }).waitFor();
    const imageControls = await p.locator("main button, main input").count();
    expect(imageControls === 0, `viewer sees ${imageControls} controls on the images page`);
    // Clusters: the tree and the pages, no control but the tree's disclosure buttons.
    await p.getByRole("link", { name: "Inventory" }).click();
    await p.getByRole("table", { name: "Clusters" }).locator('tr[data-cluster="default"]').waitFor();
    const clusterControls = await p.locator("main input, main select, main button:not(.twisty)").count();
    expect(clusterControls === 0, `viewer sees ${clusterControls} controls on the inventory page`);
    await p.goto(url + "/clusters/default");
    await p.getByRole("heading", { name: "Cluster default" }).waitFor();
    await p.locator("[data-cluster-reason]").waitFor();
    const onCluster = await p.locator("main input, main select, main button").count();
    expect(onCluster === 0, `viewer sees ${onCluster} controls on a cluster page`);
    await p.getByRole("link", { name: "VMs" }).click();
    await p.getByRole("table", { name: "Virtual machines" }).waitFor();
    if (vmName) {
      // The VM page: everything shown, no button at all (no actions, no console).
      await p.locator(`tr[data-vm="${vmName}"]`).getByRole("link", { name: vmName }).click();
      await p.getByRole("table", { name: "Disks" }).waitFor();
      const onPage = await p.locator("main button").count();
      expect(onPage === 0, `viewer sees ${onPage} buttons on the VM page`);
      for (const kind of ["console", "vnc"]) {
        const ws = await p.evaluate(([name, kind]) => new Promise((resolve) => {
          const s = new WebSocket(`ws://${location.host}/api/v1/vms/${name}/${kind}`);
          s.onopen = () => resolve("open");
          s.onerror = () => resolve("refused");
        }), [vmName, kind]);
        expect(ws === "refused", `viewer ${kind} WebSocket: ${ws}`);
      }
      await p.screenshot({ path: join(shots, "vm-viewer.png"), fullPage: true });
    }
    if (backups) {
      // The backups page: the list and the schedules, no button and no form.
      await p.getByRole("link", { name: "Backups", exact: true }).click();
      await p.getByRole("table", { name: "Backups", exact: true }).locator("tbody tr").first().waitFor();
      await p.getByRole("heading", { name: "Schedules" }).waitFor();
      const onBackups = await p.locator("main button, main input, main form").count();
      expect(onBackups === 0, `viewer sees ${onBackups} controls on the backups page`);
      const id = (await adminApi("GET", "/api/v1/backups")).backups[0].id;
      const verify = await p.evaluate(async (id) => {
        const s = await (await fetch("/api/v1/session")).json();
        const r = await fetch(`/api/v1/backups/${id}/verify`, { method: "POST", headers: { "X-CSRF-Token": s.csrf_token } });
        return r.status;
      }, id);
      expect(verify === 403, `a viewer's verify answered ${verify}`);
      await p.screenshot({ path: join(shots, "backups-viewer.png"), fullPage: true });
    }
    // Without the CSRF header: 403; with it, the viewer's role: 403 as well.
    const status = await p.evaluate(async (name) => {
      const a = await fetch(`/api/v1/vms/${name || "x"}/stop`, { method: "POST" });
      const s = await (await fetch("/api/v1/session")).json();
      const b = await fetch(`/api/v1/vms/${name || "x"}/stop`, {
        method: "POST", headers: { "X-CSRF-Token": s.csrf_token },
      });
      return [a.status, b.status, (await b.json()).error.code];
    }, vmName);
    expect(status[0] === 403 && status[1] === 403 && status[2] === "permission_denied",
      `forced stop answered ${JSON.stringify(status)}`);
    await p.screenshot({ path: join(shots, "vms-viewer.png"), fullPage: true });
  });
  await viewer.context.close();

  // An own context: what axe does in a page is not the console's (the CSP check above).
  await step("accessibility (axe-core): no serious or critical violation on any page, also at a phone's width", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await ctx.newPage();
    p.setDefaultTimeout(15000);
    const found = [], times = [];
    await p.goto(url + "/");
    await p.getByLabel("API token", { exact: true }).waitFor();
    found.push(...await axeViolations(p, "login"));
    await p.getByLabel("API token", { exact: true }).fill(adminToken);
    await p.getByRole("button", { name: "Log in" }).click();
    await p.getByRole("heading", { name: "Dashboard" }).waitFor();
    const pages = [["/", "Dashboard"], ["/inventory", "Inventory"], ["/clusters/default", "Cluster default"], ["/hosts", "Hosts"],
      ["/vms", "Virtual machines"], ["/images", "Images"], ["/tokens", "Tokens"], ["/tasks", "Tasks"], ["/events", "Events"],
      ["/search?q=web", "Search: web"]];
    if (backups) pages.push(["/backups", "Backups"]);
    if (hostName) pages.push([`/hosts/${hostName}`, `Host ${hostName}`]);
    if (vmName) pages.push([`/vms/${vmName}`, `VM ${vmName}`], ["/create", "Create a VM"]);
    for (const [path, heading] of pages) {
      await p.goto(url + path);
      await p.getByRole("heading", { name: heading }).first().waitFor();
      // loaded (the streams stay open, so no "network idle"): no "Loading…" left
      await p.getByText("Loading…").waitFor({ state: "detached", timeout: 5000 }).catch(() => {});
      await p.waitForTimeout(200);
      const t0 = Date.now();
      found.push(...await axeViolations(p, path));
      times.push(`${path} ${Date.now() - t0} ms`);
    }
    console.log(`     axe: ${times.join(", ")}`);
    // At a phone's width (390 px): every page in one column, no page-wide horizontal
    // scrolling (wide tables scroll inside their own box), and axe again on every page.
    await p.setViewportSize({ width: 390, height: 844 });
    const wide = [], phoneTimes = [];
    for (const [path, heading] of pages) {
      await p.goto(url + path);
      await p.getByRole("heading", { name: heading }).first().waitFor();
      await p.getByText("Loading…").waitFor({ state: "detached", timeout: 5000 }).catch(() => {});
      const w = await p.evaluate(() => document.documentElement.scrollWidth);
      if (w > 392) {
        // The outermost elements that stick out, to say what to fix.
        const out = await p.evaluate(() => [...document.querySelectorAll("body *")]
          .filter((e) => e.getBoundingClientRect().right > 392 && !(e.parentElement && e.parentElement.getBoundingClientRect().right > 392))
          .slice(0, 3).map((e) => `${e.tagName.toLowerCase()}${e.className ? "." + String(e.className).split(" ").join(".") : ""}`));
        wide.push(`${path} ${w} px (${out.join(", ")})`);
      }
      if (["/", "/inventory", "/hosts", "/create"].includes(path) || path.startsWith("/vms/"))
        await p.screenshot({ path: join(shots, `phone${path === "/" ? "-dashboard" : path.replace(/[/?=]/g, "-")}.png`), fullPage: true });
      await p.waitForTimeout(200);
      const t0 = Date.now();
      found.push(...await axeViolations(p, `${path} (390 px)`));
      phoneTimes.push(`${path} ${Date.now() - t0} ms`);
    }
    console.log(`     axe at 390 px: ${phoneTimes.join(", ")}`);
    await ctx.close();
    expect(wide.length === 0, `wider than a 390 px phone: ${wide.join(", ")}`);
    expect(found.length === 0, found.join("; "));
  });

  await step("no Content-Security-Policy violation", async () => {
    expect(violations.length === 0, violations.join("; "));
  });
} finally {
  await browser.close();
}
console.log(`screenshots: ${shots}`);
finish();
