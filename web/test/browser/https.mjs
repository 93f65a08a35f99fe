// The web console over HTTPS (test/e2e/web_https.sh): headless Debian Chromium driven by
// playwright-core, trusting stratad's CA through the NSS database of TRUSTING_HOME (no
// ignoreHTTPSErrors, no --ignore-certificate-errors).
//   STRATA_URL       https://127.0.0.1:PORT      ADMIN_TOKEN   an admin token
//   TRUSTING_HOME    a HOME whose .pki/nssdb has stratad's CA
//   UNTRUSTING_HOME  a HOME without it
// Prints "N passed, N failed"; exit 1 on any failure.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { env, expect, finish, launch as launchWith, step } from "./harness.mjs";

const url = env("STRATA_URL");
const adminToken = env("ADMIN_TOKEN");
const shots = env("SHOTS_DIR", "web-shots");
mkdirSync(shots, { recursive: true });

const launch = (home) => launchWith({ HOME: home });

await step("a browser without stratad's CA is refused (the certificate is not trusted)", async () => {
  const b = await launch(env("UNTRUSTING_HOME"));
  try {
    const page = await (await b.newContext()).newPage();
    let error = "";
    try {
      await page.goto(url + "/", { timeout: 15000 });
    } catch (e) {
      error = String(e && e.message);
    }
    expect(/ERR_CERT_AUTHORITY_INVALID|ERR_CERT/.test(error), `expected a certificate error, got "${error.split("\n")[0]}"`);
  } finally {
    await b.close();
  }
});

const browser = await launch(env("TRUSTING_HOME"));
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);

  await step("over HTTPS with the CA trusted: log in; the session cookie is Secure", async () => {
    const resp = await page.goto(url + "/");
    expect(resp && resp.status() === 200, `GET / answered ${resp && resp.status()}`);
    expect(url.startsWith("https://") && page.url().startsWith("https://"), `not https: ${page.url()}`);
    await page.getByLabel("API token", { exact: true }).fill(adminToken);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Dashboard" }).waitFor();
    const c = (await context.cookies()).find((x) => x.name === "strata_session");
    expect(c && c.secure && c.httpOnly && c.sameSite === "Strict", `session cookie: ${JSON.stringify(c)}`);
  });

  await step("the live events stream connects over TLS and delivers an event", async () => {
    await page.locator(".live.on").waitFor();
    // An event made now (a token created with the CSRF header) arrives on the stream.
    const status = await page.evaluate(async () => {
      const { csrf_token } = await (await fetch("/api/v1/session")).json();
      const r = await fetch("/api/v1/tokens", { method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf_token },
        body: JSON.stringify({ name: "tls-event", role: "viewer" }) });
      return r.status;
    });
    expect(status === 201, `token create answered ${status}`);
    await page.locator(".events li", { hasText: "token.create" }).first().waitFor();
    await page.screenshot({ path: join(shots, "dashboard-https.png"), fullPage: true });
  });

  await step("logout over HTTPS ends the session", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByLabel("API token", { exact: true }).waitFor();
    const r = await page.evaluate(async () => (await fetch("/api/v1/vms")).status);
    expect(r === 401, `GET /api/v1/vms after logout answered ${r}`);
  });
  await context.close();
} finally {
  await browser.close();
}
finish();
