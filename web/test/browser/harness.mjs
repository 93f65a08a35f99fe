// What the browser test scripts share: named steps counted and printed ("ok"/"FAIL", then
// "N passed, N failed" and the exit code), expect, and headless Debian Chromium launched
// with the flags this machine needs (docs/internals/web.md).
import { chromium } from "playwright-core";

export const env = (k, d) => process.env[k] ?? d;

let passed = 0;
let failed = 0;
export async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.message ? e.message.split("\n")[0] : e}`);
  }
}

export function expect(cond, what) {
  if (!cond) throw new Error(what);
}

// extraEnv: the browser process's environment on top of this one (HOME with an NSS db).
export function launch(extraEnv = undefined) {
  return chromium.launch({
    executablePath: env("CHROMIUM", "/usr/bin/chromium"),
    headless: true,
    ...(extraEnv ? { env: { ...process.env, ...extraEnv } } : {}),
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

// The last lines: the counts, and the exit code (1 on any failure).
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
