// The console's shell: who is logged in (GET /api/v1/session), the login form, navigation
// between pages by path (stratad answers index.html for them), logout, and the one live
// event feed the pages refresh from.
import { LitElement, html, nothing } from "lit";
import { keyed } from "lit/directives/keyed.js";
import { api, errorText, setCsrfToken } from "./api/client";
import { EventFeed } from "./events";
import type { Role } from "./format";
import type { StrataEvent } from "./api/client";
import { prefetchFor } from "./pages";
import "./detail";
import "./create";
import "./admin-pages";
import "./clusters";
import "./activity";
import "./backups";

type Page = "dashboard" | "inventory" | "cluster" | "hosts" | "vms" | "host" | "vm" | "create" | "images" | "tokens" | "tasks" | "events" | "search" | "backups";

const PAGES: Array<{ page: Page; path: string; label: string }> = [
  { page: "dashboard", path: "/", label: "Dashboard" },
  { page: "inventory", path: "/inventory", label: "Inventory" },  // clusters -> hosts -> VMs
  { page: "hosts", path: "/hosts", label: "Hosts" },
  { page: "vms", path: "/vms", label: "VMs" },
  { page: "backups", path: "/backups", label: "Backups" },
  { page: "tasks", path: "/tasks", label: "Tasks" },
  { page: "events", path: "/events", label: "Events" },
  { page: "images", path: "/images", label: "Images" },
  { page: "tokens", path: "/tokens", label: "Tokens" },  // admins only (the nav hides it)
];

// "/vms/web-1" is the VM page of web-1, "/hosts/h1" the host page of h1.
function pageFor(path: string): Page {
  if (path === "/create") return "create";
  if (path === "/search") return "search";
  if (path.startsWith("/clusters/") && path.length > "/clusters/".length) return "cluster";
  if (path === "/clusters") return "inventory";
  const hit = PAGES.find((p) => p.path !== "/" && (path === p.path || path.startsWith(p.path + "/")));
  if (!hit) return "dashboard";
  if (path.length > hit.path.length + 1) return hit.page === "vms" ? "vm" : hit.page === "hosts" ? "host" : hit.page;
  return hit.page;
}

function detailName(path: string): string {
  const rest = path.split("/")[2] ?? "";
  try {
    return decodeURIComponent(rest);
  } catch {
    return rest;
  }
}

// The first page's data is asked for now, together with the session (pages.ts).
prefetchFor(pageFor(location.pathname), location.search, detailName(location.pathname));

class StrataApp extends LitElement {
  static override properties = {
    state: { state: true },
    user: { state: true },
    role: { state: true },
    page: { state: true },
    detail: { state: true },
    error: { state: true },
    live: { state: true },
    events: { state: true },
    busy: { state: true },
  };
  state: "loading" | "login" | "ready" = "loading";
  user = "";
  role: Role | "" = "";
  page: Page = pageFor(location.pathname);
  detail = detailName(location.pathname);
  error = "";
  live = false;
  events: StrataEvent[] = [];
  busy = false;
  private feed: EventFeed | null = null;

  protected override createRenderRoot() {
    return this;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    window.addEventListener("popstate", () => {
      this.page = pageFor(location.pathname);
      this.detail = detailName(location.pathname);
    });
    // Links inside the pages (VM and host names) navigate without a reload.
    this.addEventListener("click", (ev: MouseEvent) => {
      const a = (ev.target as Element | null)?.closest?.("a");
      const href = a?.getAttribute("href") ?? "";
      if (!a || !href.startsWith("/") || href.startsWith("/api/") || a.target) return;
      this.go(ev, href);
    });
    void this.loadSession();
  }

  private async loadSession(): Promise<void> {
    const { data, response } = await api.GET("/api/v1/session");
    performance.mark("strata:session");
    if (data) this.loggedIn(data.name, data.role, data.csrf_token);
    else {
      this.state = "login";
      if (response.status !== 401) this.error = `The manager answered ${response.status}`;
    }
  }

  private loggedIn(name: string, role: Role, csrf: string): void {
    setCsrfToken(csrf);
    this.user = name;
    this.role = role;
    this.state = "ready";
    this.error = "";
    this.feed?.stop();
    this.feed = new EventFeed({
      onEvent: (e) => {
        this.events = [e, ...this.events].slice(0, 50);
      },
      onState: (up) => {
        this.live = up;
      },
    });
    this.feed.start();
  }

  private async login(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const form = ev.target as HTMLFormElement;
    const token = (new FormData(form).get("token") as string | null)?.trim() ?? "";
    if (!token) {
      this.error = "Enter an API token";
      return;
    }
    this.busy = true;
    const { data, error } = await api.POST("/api/v1/session", { body: { token } });
    this.busy = false;
    form.reset();
    if (data) this.loggedIn(data.name, data.role, data.csrf_token);
    else this.error = errorText(error, "Login failed");
  }

  private async logout(): Promise<void> {
    await api.DELETE("/api/v1/session");
    this.feed?.stop();
    this.feed = null;
    setCsrfToken("");
    this.state = "login";
    this.user = "";
    this.role = "";
    this.events = [];
  }

  // The global search: its results page (/search?q=), a new page for each search.
  private search(ev: SubmitEvent): void {
    ev.preventDefault();
    const q = (new FormData(ev.target as HTMLFormElement).get("q") as string | null)?.trim() ?? "";
    if (!q) return;
    history.pushState(null, "", `/search?${new URLSearchParams({ q }).toString()}`);
    this.page = "search";
    this.detail = q;
    this.requestUpdate();
  }

  private go(ev: MouseEvent, path: string): void {
    if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    // A link may carry a query ("/backups?vm=web-1"): the page is the path's.
    const pathname = new URL(path, location.origin).pathname;
    if (location.pathname + location.search !== path) history.pushState(null, "", path);
    this.page = pageFor(pathname);
    this.detail = detailName(pathname);
    window.scrollTo(0, 0);
  }

  override render() {
    if (this.state === "loading") return html`<p class="loading" role="status">Loading…</p>`;
    if (this.state === "login") return this.renderLogin();
    return html`
      <header class="topbar">
        <span class="brand">Strata</span>
        <nav aria-label="Main">
          ${PAGES.filter((p) => p.page !== "tokens" || this.role === "admin").map(
            (p) => html`<a href=${p.path} aria-current=${this.page === p.page || `${this.page}s` === p.page || (this.page === "cluster" && p.page === "inventory") ? "page" : nothing}>${p.label}</a>`,
          )}
        </nav>
        <form role="search" class="global-search" @submit=${(e: SubmitEvent) => this.search(e)}>
          <label for="global-search" class="visually-hidden">Search VMs, hosts, clusters and images</label>
          <input id="global-search" name="q" type="search" placeholder="Search: name or k=v" spellcheck="false" />
        </form>
        <span class="live ${this.live ? "on" : "off"}" role="status"
          title="Live events">${this.live ? "live" : "reconnecting"}</span>
        <span class="who">${this.user} <span class="role">(${this.role})</span></span>
        <button type="button" class="secondary" @click=${() => this.logout()}>Log out</button>
      </header>
      <main id="main">
        ${this.renderPage()}
      </main>
    `;
  }

  private renderPage() {
    switch (this.page) {
      case "dashboard":
        return html`<strata-dashboard .role=${this.role} .events=${this.events}></strata-dashboard>`;
      case "inventory":
        return html`<strata-inventory .role=${this.role} .events=${this.events}></strata-inventory>`;
      case "cluster":
        return keyed(this.detail, html`<strata-cluster .name=${this.detail} .role=${this.role} .events=${this.events}></strata-cluster>`);
      case "hosts":
        return html`<strata-hosts .events=${this.events}></strata-hosts>`;
      case "vms":
        return html`<strata-vms .role=${this.role} .events=${this.events}></strata-vms>`;
      case "search":
        return keyed(location.search, html`<strata-search .role=${this.role} .events=${this.events}></strata-search>`);
      case "backups":
        return html`<strata-backups .role=${this.role} .events=${this.events}></strata-backups>`;
      case "tasks":
        return html`<strata-tasks .role=${this.role} .events=${this.events}></strata-tasks>`;
      case "events":
        return html`<strata-events .role=${this.role} .events=${this.events}></strata-events>`;
      case "images":
        return html`<strata-images .role=${this.role} .events=${this.events}></strata-images>`;
      case "tokens":
        return html`<strata-tokens .role=${this.role} .events=${this.events}></strata-tokens>`;
      case "create":
        return html`<strata-create-vm .role=${this.role} .events=${this.events}></strata-create-vm>`;
      // keyed by name: another VM or host is a fresh page
      case "vm":
        return keyed(this.detail, html`<strata-vm .name=${this.detail} .role=${this.role} .events=${this.events}></strata-vm>`);
      case "host":
        return keyed(this.detail, html`<strata-host .name=${this.detail} .role=${this.role} .events=${this.events}></strata-host>`);
    }
  }

  private renderLogin() {
    return html`
      <main class="login">
        <form @submit=${(e: SubmitEvent) => this.login(e)} aria-labelledby="login-title">
          <h1 id="login-title">Strata</h1>
          <p>Log in with an API token (<code>strata token create</code>, or the first admin
            token in <code>DATA_DIR/admin.token</code>).</p>
          <label for="token">API token</label>
          <input id="token" name="token" type="password" autocomplete="current-password"
            required spellcheck="false" />
          ${this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing}
          <button type="submit" ?disabled=${this.busy}>Log in</button>
        </form>
      </main>
    `;
  }
}
customElements.define("strata-app", StrataApp);
