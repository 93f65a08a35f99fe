// The create wizard's cloud-init and the VM page's guest facts with a real guest
// (test/e2e/web_guest.sh): the Debian image created from the wizard with a host name, a
// user and an SSH key, started; its VM page, never reloaded, shows the host name
// cloud-init set, the OS and the user-mode address once the guest's qemu-guest-agent
// answered (the manager's vm.guest event reloads the page: no polling).
//   STRATA_URL   http://127.0.0.1:PORT      ADMIN_TOKEN  an admin token
//   VM_NAME      the VM to create           VM_CMDLINE   the Debian kernel command line
//   BOOT_LIMIT_S how long the guest may take to boot and answer (a bound for a hang)
//   SHOTS_DIR    where the screenshots go
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { env, expect, finish, launch, step } from "./harness.mjs";

const url = env("STRATA_URL");
const adminToken = env("ADMIN_TOKEN");
const vm = env("VM_NAME", "web-deb");
const cmdline = env("VM_CMDLINE");
const bootLimitMs = Number(env("BOOT_LIMIT_S", "600")) * 1000;
const shots = env("SHOTS_DIR", "web-shots");
mkdirSync(shots, { recursive: true });
const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2bUq0n3l1S9yQh1m0mC4sQkQ7n0wq web@strata";

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("pageerror", (e) => console.log(`     page error: ${e.message.split("\n")[0]}`));

  await step("create wizard: the Debian image with cloud-init (host name, user, SSH key, sudo), started", async () => {
    await page.goto(url + "/create");
    await page.getByLabel("API token", { exact: true }).fill(adminToken);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Create a VM" }).waitFor();
    await page.getByLabel("Name", { exact: true }).fill(vm);
    await page.getByLabel("Memory (MiB)").fill("512");
    await page.getByLabel("Disk 1 image").selectOption("debian-disk");
    await page.getByLabel("Kernel", { exact: true }).selectOption("debian-kernel");
    await page.getByLabel("Initrd").selectOption("debian-initrd");
    await page.getByLabel("Kernel command line").fill(cmdline);
    await page.getByLabel("Guest host name").fill("web-guest");
    await page.getByLabel("User", { exact: true }).fill("admin");
    await page.getByLabel("SSH public keys").fill(sshKey);
    await page.getByLabel("Passwordless sudo").check();
    await page.getByRole("status").filter({ hasText: "Goes to" }).waitFor();
    await page.screenshot({ path: join(shots, "guest-create.png"), fullPage: true });
    await page.getByRole("button", { name: "Create" }).click();
    await page.getByRole("heading", { name: `Creating ${vm}` }).waitFor();
    await page.locator("dd .badge.state-succeeded").waitFor({ timeout: 120000 });
  });

  await step("VM page: the guest's facts arrive live (host name from cloud-init, OS, address, last seen)", async () => {
    await page.getByRole("link", { name: `Open the VM page of ${vm}` }).click();
    await page.getByRole("heading", { name: "Guest", exact: true }).waitFor();
    await page.locator("ul[data-cloud-init] li", { hasText: "user admin (1 SSH key, password locked, sudo)" }).waitFor();
    // A mark in the page: had it been loaded again, the mark would be gone.
    await page.evaluate(() => { window.strataMark = "same page"; });
    const guest = page.locator('section[data-guest="yes"]');
    await guest.locator('[data-fact="hostname"]', { hasText: "web-guest" }).waitFor({ timeout: bootLimitMs });
    await guest.locator('[data-fact="os"]', { hasText: "Debian" }).waitFor();
    await guest.locator('[data-fact="addresses"]', { hasText: /10\.0\.2\.\d+\/24/ }).waitFor({ timeout: 60000 });
    expect((await guest.locator('[data-fact="seen"]').textContent()).trim() !== "-", "no last-seen time");
    expect(await page.evaluate(() => window.strataMark) === "same page", "the VM page was loaded again");
    // What made it come: the manager's vm.guest event, in the VM's event list.
    await page.getByRole("list", { name: "Events of this VM" }).locator("li", { hasText: "vm.guest" }).first().waitFor();
    const api = await page.evaluate(async (n) => (await (await fetch(`/api/v1/vms/${n}`)).json()).status.guest, vm);
    expect(api?.hostname === "web-guest", `the API's guest facts: ${JSON.stringify(api)}`);
    await page.screenshot({ path: join(shots, "guest-facts.png"), fullPage: true });
  });
  await context.close();
} finally {
  await browser.close();
}
console.log(`screenshots: ${shots}`);
finish();
