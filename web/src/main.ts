// The console's shell: who is logged in (GET /api/v1/session), the login form, navigation
// between pages by path (stratad answers index.html for them), logout, and the one live
// event feed the pages refresh from.
import { LitElement, html, nothing } from "lit";
import { api, errorText, setCsrfToken } from "./api/client";
import { EventFeed } from "./events";
import type { Role } from "./format";
import type { StrataEvent } from "./api/client";
import "./pages";

type Page = "dashboard" | "hosts" | "vms";

const PAGES: Array<{ page: Page; path: string; label: string }> = [
  { page: "dashboard", path: "/", label: "Dashboard" },
  { page: "hosts", path: "/hosts", label: "Hosts" },
  { page: "vms", path: "/vms", label: "VMs" },
];

function pageFor(path: string): Page {
  const hit = PAGES.find((p) => p.path !== "/" && (path === p.path || path.startsWith(p.path + "/")));
  return hit ? hit.page : "dashboard";
}

class StrataApp extends LitElement {
  static override properties = {
    state: { state: true },
    user: { state: true },
    role: { state: true },
    page: { state: true },
    error: { state: true },
    live: { state: true },
    events: { state: true },
    busy: { state: true },
  };
  state: "loading" | "login" | "ready" = "loading";
  user = "";
  role: Role | "" = "";
  page: Page = pageFor(location.pathname);
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
    });
    void this.loadSession();
  }

  private async loadSession(): Promise<void> {
    const { data, response } = await api.GET("/api/v1/session");
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

  private go(ev: MouseEvent, path: string): void {
    if (ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    if (location.pathname !== path) history.pushState(null, "", path);
    this.page = pageFor(path);
  }

  override render() {
    if (this.state === "loading") return html`<p class="loading" role="status">Loading…</p>`;
    if (this.state === "login") return this.renderLogin();
    return html`
      <header class="topbar">
        <span class="brand">Strata</span>
        <nav aria-label="Main">
          ${PAGES.map(
            (p) => html`<a href=${p.path} aria-current=${this.page === p.page ? "page" : nothing}
              @click=${(e: MouseEvent) => this.go(e, p.path)}>${p.label}</a>`,
          )}
        </nav>
        <span class="live ${this.live ? "on" : "off"}" role="status"
          title="Live events">${this.live ? "live" : "reconnecting"}</span>
        <span class="who">${this.user} <span class="role">(${this.role})</span></span>
        <button type="button" class="secondary" @click=${() => this.logout()}>Log out</button>
      </header>
      <main id="main">
        ${this.page === "dashboard"
          ? html`<strata-dashboard .role=${this.role} .events=${this.events}></strata-dashboard>`
          : this.page === "hosts"
            ? html`<strata-hosts .events=${this.events}></strata-hosts>`
            : html`<strata-vms .role=${this.role} .events=${this.events}></strata-vms>`}
      </main>
    `;
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
