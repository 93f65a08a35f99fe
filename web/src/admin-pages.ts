// The images page (/images: the catalog; upload with a progress bar and delete for
// operators, the 409 of an image in use explained) and the tokens page (/tokens, admins:
// API tokens created and deleted, the secret shown once; one-time host join tokens).
// A role that may not use a control does not see it.
import { html, nothing } from "lit";
import { repeat } from "lit/directives/repeat.js";
import { api, csrfTokenValue, errorText, type Image, type StrataEvent, type Token } from "./api/client";
import { deleteOutcome, nameProblem, suggestImageName, ttlSeconds, uploadUrl, type ImageKind } from "./admin";
import { bytes, canOperate, time } from "./format";
import { LivePage, stateBadge } from "./pages";

class ImagesPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    images: { state: true },
    file: { state: true },
    imageName: { state: true },
    kind: { state: true },
    sent: { state: true },
    total: { state: true },
    uploading: { state: true },
    message: { state: true },
    problem: { state: true },
    deleting: { state: true },
  };
  images: Image[] = [];
  file: File | null = null;
  imageName = "";
  kind: ImageKind = "disk";
  sent = 0;
  total = 0;
  uploading = false;
  message = "";
  problem = "";
  deleting = "";
  private xhr: XMLHttpRequest | null = null;

  protected override wants(e: StrataEvent | undefined): boolean {
    return (e?.action ?? "").startsWith("image.");
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.xhr?.abort();
  }

  protected async load(): Promise<void> {
    const { data, error } = await api.GET("/api/v1/images", { params: { query: { limit: 1000 } } });
    if (!data) throw new Error(errorText(error, "cannot list images"));
    this.images = data.images ?? [];
  }

  private pick(e: Event): void {
    const f = (e.target as HTMLInputElement).files?.[0] ?? null;
    this.file = f;
    if (f && !this.imageName) this.imageName = suggestImageName(f.name);
  }

  // XMLHttpRequest, not fetch: only it reports upload progress. The body is the raw file
  // (application/octet-stream); the session cookie and the CSRF header authenticate it.
  private upload(ev: SubmitEvent): void {
    ev.preventDefault();
    const name = this.imageName.trim();
    const bad = nameProblem(name);
    if (!this.file) this.problem = "choose a file";
    else if (bad) this.problem = `${bad} (field: name)`;
    if (!this.file || bad) return;
    this.problem = "";
    this.message = "";
    this.uploading = true;
    this.sent = 0;
    this.total = this.file.size;
    const xhr = new XMLHttpRequest();
    this.xhr = xhr;
    xhr.open("POST", uploadUrl(name, this.kind));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-CSRF-Token", csrfTokenValue());
    xhr.upload.onprogress = (p) => {
      this.sent = p.loaded;
      if (p.lengthComputable) this.total = p.total;
    };
    xhr.onload = () => {
      this.uploading = false;
      let body: unknown;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = undefined;
      }
      if (xhr.status === 201) {
        this.message = `uploaded ${name}`;
        this.file = null;
        this.imageName = "";
        this.querySelector<HTMLFormElement>("#image-upload")?.reset();
      } else {
        this.problem = errorText(body, `upload answered ${xhr.status}`);
      }
      void this.refresh();
    };
    xhr.onerror = () => {
      this.uploading = false;
      this.problem = "the upload failed (connection lost)";
    };
    xhr.send(this.file);
  }

  private confirmDelete(name: string): void {
    this.deleting = name;
    void this.updateComplete.then(() => this.querySelector<HTMLDialogElement>("#image-delete-dialog")?.showModal());
  }

  private async closeDelete(yes: boolean): Promise<void> {
    this.querySelector<HTMLDialogElement>("#image-delete-dialog")?.close();
    const name = this.deleting;
    this.deleting = "";
    if (!yes || !name) return;
    const { data, error, response } = await api.DELETE("/api/v1/images/{name}", { params: { path: { name } } });
    if (data) {
      const where = deleteOutcome(data.hosts);
      this.message = `deleted ${name}${where ? `: ${where}` : ""}`;
      this.problem = "";
    } else {
      // 409: a VM's spec names the image; the message says which one.
      this.problem = response.status === 409
        ? `${name} is in use and was not deleted: ${errorText(error)}. Delete the VMs that use it first.`
        : errorText(error, `cannot delete ${name}`);
    }
    void this.refresh();
  }

  override render() {
    const operate = canOperate(this.role);
    const pct = this.total ? Math.round((this.sent / this.total) * 100) : 0;
    return html`<h1>Images</h1>${this.renderError()}
      ${this.message ? html`<p class="notice" role="status">${this.message}</p>` : nothing}
      ${this.problem ? html`<p class="error" role="alert">${this.problem}</p>` : nothing}
      ${operate
        ? html`<section aria-labelledby="img-up-h">
            <h2 id="img-up-h">Upload an image</h2>
            <form id="image-upload" class="toolbar" @submit=${(e: SubmitEvent) => this.upload(e)} aria-labelledby="img-up-h">
              <label for="img-file">File</label>
              <input id="img-file" type="file" @change=${(e: Event) => this.pick(e)} ?disabled=${this.uploading} />
              <label for="img-name">Image name</label>
              <input id="img-name" .value=${this.imageName} spellcheck="false" ?disabled=${this.uploading}
                @input=${(e: InputEvent) => { this.imageName = (e.target as HTMLInputElement).value; }} />
              <label for="img-kind">Kind</label>
              <select id="img-kind" ?disabled=${this.uploading} @change=${(e: Event) => { this.kind = (e.target as HTMLSelectElement).value as ImageKind; }}>
                ${(["disk", "kernel", "initrd", "iso"] as const).map((k) => html`<option value=${k} ?selected=${this.kind === k}>${k}</option>`)}
              </select>
              <button type="submit" ?disabled=${this.uploading}>Upload</button>
              ${this.uploading
                ? html`<progress max="100" .value=${pct} aria-label="upload progress"></progress>
                    <span role="status">${bytes(this.sent)} of ${bytes(this.total)} (${pct}%)</span>
                    <button type="button" class="secondary" @click=${() => this.xhr?.abort()}>Cancel upload</button>`
                : nothing}
            </form>
          </section>`
        : nothing}
      ${!this.loaded ? html`<p role="status">Loading…</p>` : html`
      <table class="grid" aria-label="Images">
        <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Format</th><th scope="col">Size</th>
          <th scope="col">Virtual size</th><th scope="col">SHA-256</th><th scope="col">State</th><th scope="col">Created</th>
          ${operate ? html`<th scope="col">Actions</th>` : nothing}</tr></thead>
        <tbody>${repeat(this.images, (i) => i.name ?? "", (i) => html`<tr data-image=${i.name ?? ""}>
          <th scope="row">${i.name}</th><td>${i.kind}</td><td>${i.format ?? "-"}</td><td>${bytes(i.size_bytes)}</td>
          <td>${bytes(i.virtual_size)}</td><td><code title=${i.sha256 ?? ""}>${(i.sha256 ?? "").slice(0, 12)}</code></td>
          <td>${stateBadge(i.state)}</td><td>${time(i.created_ms)}</td>
          ${operate ? html`<td><button type="button" class="danger" aria-label="Delete image ${i.name}"
            @click=${() => this.confirmDelete(i.name ?? "")}>Delete…</button></td>` : nothing}
        </tr>`)}</tbody>
      </table>
      ${this.images.length === 0 ? html`<p class="muted">The catalog is empty.</p>` : nothing}`}
      ${operate ? html`<dialog id="image-delete-dialog" aria-labelledby="img-del-title">
        <h2 id="img-del-title">Delete image ${this.deleting}?</h2>
        <p>It is removed from the catalog and from the hosts that hold a copy no VM disk uses.
          An image a VM names is refused (409).</p>
        <div class="toolbar">
          <button type="button" class="danger" @click=${() => this.closeDelete(true)}>Delete ${this.deleting}</button>
          <button type="button" class="secondary" @click=${() => this.closeDelete(false)}>Cancel</button>
        </div>
      </dialog>` : nothing}`;
  }
}
customElements.define("strata-images", ImagesPage);

type JoinToken = { id?: string; token?: string; expires_ms?: number; created_ms?: number; used_by_host?: string | null; ca_fingerprint?: string };

class TokensPage extends LivePage {
  static override properties = {
    ...LivePage.properties,
    tokens: { state: true },
    joins: { state: true },
    secret: { state: true },
    problem: { state: true },
    message: { state: true },
  };
  tokens: Token[] = [];
  joins: JoinToken[] = [];
  secret = "";  // the secret of the token just created; shown once, never stored
  problem = "";
  message = "";

  protected override wants(e: StrataEvent | undefined): boolean {
    return /^(token|join_token)\./.test(e?.action ?? "");
  }

  protected async load(): Promise<void> {
    if (this.role !== "admin") return;
    const [tokens, joins] = await Promise.all([api.GET("/api/v1/tokens"), api.GET("/api/v1/join-tokens")]);
    if (!tokens.data) throw new Error(errorText(tokens.error, "cannot list tokens"));
    this.tokens = tokens.data.tokens ?? [];
    const j = (joins.data ?? {}) as { join_tokens?: JoinToken[] };
    this.joins = j.join_tokens ?? [];
  }

  private async create(ev: SubmitEvent): Promise<void> {
    ev.preventDefault();
    const form = new FormData(ev.target as HTMLFormElement);
    const name = String(form.get("name") ?? "").trim();
    const role = String(form.get("role") ?? "viewer") as "admin" | "operator" | "viewer";
    const ttl = ttlSeconds(String(form.get("ttl") ?? ""));
    const bad = nameProblem(name);
    if (bad) return void (this.problem = `${bad} (field: name)`);
    if (ttl === null) return void (this.problem = "lifetime: seconds, or a number with s, m, h or d (field: ttl_s)");
    const { data, error } = await api.POST("/api/v1/tokens", { body: ttl === undefined ? { name, role } : { name, role, ttl_s: ttl } });
    if (!data) return void (this.problem = errorText(error, "cannot create the token"));
    this.problem = "";
    this.message = `created ${role} token ${name}`;
    this.secret = data.token ?? "";
    (ev.target as HTMLFormElement).reset();
    void this.refresh();
  }

  private async deleteToken(t: Token): Promise<void> {
    if (!window.confirm(`Delete the token ${t.name}? Whoever uses it is logged out.`)) return;
    const { error } = await api.DELETE("/api/v1/tokens/{id}", { params: { path: { id: t.id ?? "" } } });
    this.message = error ? "" : `deleted token ${t.name}`;
    this.problem = error ? errorText(error) : "";
    void this.refresh();
  }

  private async createJoin(): Promise<void> {
    const { data, error } = await api.POST("/api/v1/join-tokens", { body: { ttl_s: 3600 } });
    if (!data) return void (this.problem = errorText(error, "cannot create a join token"));
    this.message = `created a join token (fingerprint ${data.ca_fingerprint ?? "-"})`;
    // One token was asked for (no count): the answer is the token itself, not a batch.
    const one: object = data;
    this.secret = "token" in one && typeof one.token === "string" ? one.token : "";
    void this.refresh();
  }

  override render() {
    if (this.role !== "admin")
      return html`<h1>Tokens</h1><p role="status">Tokens are managed by admins.</p>`;
    return html`<h1>Tokens</h1>${this.renderError()}
      ${this.message ? html`<p class="notice" role="status">${this.message}</p>` : nothing}
      ${this.problem ? html`<p class="error" role="alert">${this.problem}</p>` : nothing}
      ${this.secret
        ? html`<section aria-labelledby="secret-h"><h2 id="secret-h">The new secret (shown once)</h2>
            <p><code class="secret">${this.secret}</code></p>
            <p class="muted">Copy it now: the manager keeps only its hash.</p>
            <button type="button" class="secondary" @click=${() => { this.secret = ""; }}>I have copied it</button></section>`
        : nothing}
      <section aria-labelledby="tok-new-h">
        <h2 id="tok-new-h">New API token</h2>
        <form class="toolbar" @submit=${(e: SubmitEvent) => this.create(e)} aria-labelledby="tok-new-h">
          <label for="tok-name">Token name</label><input id="tok-name" name="name" spellcheck="false" />
          <label for="tok-role">Role</label>
          <select id="tok-role" name="role"><option>viewer</option><option>operator</option><option>admin</option></select>
          <label for="tok-ttl">Lifetime</label><input id="tok-ttl" name="ttl" placeholder="never (or 3600, 8h, 30d)" />
          <button type="submit">Create token</button>
        </form>
      </section>
      <table class="grid" aria-label="API tokens">
        <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">State</th><th scope="col">Expires</th>
          <th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
        <tbody>${repeat(this.tokens, (t) => t.name ?? "", (t) => html`<tr data-token=${t.name ?? ""}>
          <th scope="row">${t.name}</th><td>${t.role}</td><td>${t.revoked ? "revoked" : "active"}</td>
          <td>${t.expires_ms ? new Date(t.expires_ms).toLocaleString() : "never"}</td><td>${time(t.created_ms)}</td>
          <td><button type="button" class="danger" aria-label="Delete token ${t.name}" @click=${() => this.deleteToken(t)}>Delete</button></td>
        </tr>`)}</tbody>
      </table>
      <section aria-labelledby="join-h" class="join">
        <h2 id="join-h">Host join tokens</h2>
        <p class="muted">One-time tokens for <code>strata-agent serve --join-token</code>, valid one hour.</p>
        <button type="button" @click=${() => this.createJoin()}>Create join token</button>
        <table class="grid" aria-label="Join tokens">
          <thead><tr><th scope="col">Id</th><th scope="col">Expires</th><th scope="col">Used by</th></tr></thead>
          <tbody>${repeat(this.joins, (j) => j.id ?? "", (j) => html`<tr><th scope="row"><code>${(j.id ?? "").slice(0, 12)}</code></th>
            <td>${j.expires_ms ? new Date(j.expires_ms).toLocaleString() : "-"}</td><td>${j.used_by_host ?? "-"}</td></tr>`)}</tbody>
        </table>
      </section>`;
  }
}
customElements.define("strata-tokens", TokensPage);
