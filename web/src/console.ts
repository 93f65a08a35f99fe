// The serial console in the browser: xterm.js over the manager's console WebSocket
// (GET /api/v1/vms/{name}/console). The browser sends the session cookie and its Origin
// with the upgrade; stratad accepts a cookie-authenticated WebSocket only from its own
// origin (docs/internals/web.md). No token is held by the page or put in the URL.
// Loaded on demand by the VM page (import("./console")), so xterm.js stays out of the main
// bundle.
import { LitElement, html, nothing } from "lit";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { consoleUrl } from "./format";

// xterm.js writes its theme and cell-size rules into <style> elements, which stratad's
// Content-Security-Policy (style-src 'self', no 'unsafe-inline') refuses. Instead each
// <style> xterm creates by script becomes an inert, empty <strata-style> element whose
// text goes to a constructed stylesheet adopted by the document (CSSOM, which style-src
// does not govern), removed with the element. Installed once the console module loads;
// nothing else in the console creates <style> elements.
function routeStyleElementsToAdoptedSheets(): void {
  const create = Document.prototype.createElement;
  if ((create as { strataPatched?: boolean }).strataPatched) return;
  const patched = function (this: Document, tag: string, options?: ElementCreationOptions) {
    if (tag.toLowerCase() !== "style" || typeof CSSStyleSheet.prototype.replaceSync !== "function")
      return create.call(this, tag, options);
    const style = create.call(this, "strata-style") as HTMLElement;
    const sheet = new CSSStyleSheet();
    let text = "";
    Object.defineProperty(style, "textContent", {
      configurable: true,
      get: () => text,
      set: (v: string | null) => {
        text = v ?? "";
        sheet.replaceSync(text);
        const doc = style.ownerDocument;
        if (!doc.adoptedStyleSheets.includes(sheet)) doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
      },
    });
    // xterm removes the element on dispose: the sheet goes with it.
    const remove = style.remove.bind(style);
    style.remove = () => {
      const doc = style.ownerDocument;
      doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
      remove();
    };
    return style;
  } as typeof Document.prototype.createElement;
  (patched as { strataPatched?: boolean }).strataPatched = true;
  Document.prototype.createElement = patched;
}
routeStyleElementsToAdoptedSheets();

class SerialConsole extends LitElement {
  static override properties = {
    name: { attribute: false },
    status: { state: true },
    note: { state: true },
  };
  name = "";
  status = "connecting";
  note = "";
  private term: Terminal | null = null;
  private fit: FitAddon | null = null;
  private ws: WebSocket | null = null;
  private readonly onResize = () => this.fit?.fit();

  protected override createRenderRoot() {
    return this;
  }

  override firstUpdated(): void {
    const host = this.querySelector<HTMLElement>(".terminal-host");
    if (!host) return;
    this.term = new Terminal({
      convertEol: false,
      cursorBlink: true,
      fontSize: 14,
      scrollback: 5000,
      screenReaderMode: false,
      theme: { background: "#1b1f24", foreground: "#e6edf3" },
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(host);
    this.term.textarea?.setAttribute("aria-label", `Serial console of ${this.name}`);
    this.fit.fit();
    // Opened from a button above it: bring it on screen (xterm.js does not draw while its
    // screen is out of view).
    host.scrollIntoView({ block: "nearest" });
    window.addEventListener("resize", this.onResize);
    this.term.onData((d) => {
      if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(d);
    });
    this.connect();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.removeEventListener("resize", this.onResize);
    this.ws?.close();
    this.ws = null;
    this.term?.dispose();
    this.term = null;
  }

  // "Paste" reads the clipboard (the browser asks the user the first time) and types it
  // into the guest as xterm.js does for Ctrl+Shift+V or the context menu's Paste: new
  // lines become Enter, bracketed when the guest asked for bracketed paste.
  private async paste(): Promise<void> {
    let text: string;
    try {
      text = await navigator.clipboard.readText();
    } catch {
      this.note = "The browser refused to read the clipboard: press Ctrl+Shift+V in the console instead.";
      return;
    }
    this.note = "";
    this.term?.paste(text);
    this.term?.focus();
  }

  private connect(): void {
    this.ws?.close();
    this.status = "connecting";
    const ws = new WebSocket(consoleUrl(location, this.name));
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.status = "connected";
      this.term?.focus();
    };
    ws.onmessage = (m: MessageEvent) => {
      if (m.data instanceof ArrayBuffer) this.term?.write(new Uint8Array(m.data));
      else this.term?.write(String(m.data));
    };
    ws.onclose = (c: CloseEvent) => {
      if (this.ws !== ws) return;
      this.status = c.wasClean ? "closed" : "disconnected (no console: the VM may be stopped, or the host unreachable)";
    };
    this.ws = ws;
  }

  override render() {
    const up = this.status === "connected";
    return html`
      <div class="toolbar">
        <span class="badge ${up ? "state-running" : "state-stopped"}" role="status">console ${this.status}</span>
        ${up ? html`<button type="button" class="secondary" @click=${() => this.paste()}>Paste</button>`
          : html`<button type="button" class="secondary" @click=${() => this.connect()}>Reconnect</button>`}
        <span class="muted">Keys go to the guest's serial port (Ctrl+Shift+V pastes); the last 64 KiB of output is replayed on connect.</span>
        ${this.note ? html`<span class="error-text" role="status">${this.note}</span>` : nothing}
      </div>
      <div class="terminal-host"></div>
    `;
  }
}
customElements.define("strata-serial-console", SerialConsole);
