// The graphical console in the browser: noVNC's RFB client over the manager's VNC WebSocket
// (GET /api/v1/vms/{name}/vnc, raw RFB bytes relayed to the VM's VNC socket through its
// host's agent). Authenticated like the serial console: the session cookie and the page's
// Origin on the upgrade, no token in the URL (docs/internals/web.md). Loaded on demand by
// the VM page (import("./vnc")), so noVNC stays out of the main bundle.
//
// Scaling: the guest's screen is scaled to the panel (scaleViewport), never resized from
// here (resizeSession off: the guest's resolution is its own); noVNC maps pointer
// coordinates through the same scale, so the pointer has no offset as long as the guest
// takes absolute coordinates (the usb-tablet of hardware profile v1; a legacy v0 VM's
// relative PS/2 mouse can drift from the browser's pointer).
import { LitElement, html } from "lit";
import RFB from "@novnc/novnc";
import { KEY_COMBOS, consoleUrl, keySequence, textKeysyms } from "./format";

type Status = "connecting" | "connected" | "closed" | "disconnected";

class GraphicalConsole extends LitElement {
  static override properties = {
    name: { attribute: false },
    status: { state: true },
    desktop: { state: true },
  };
  name = "";
  status: Status = "connecting";
  desktop = "";
  private rfb: RFB | null = null;

  protected override createRenderRoot() {
    return this;
  }

  override firstUpdated(): void {
    this.connect();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    const rfb = this.rfb;
    this.rfb = null;
    rfb?.disconnect();
  }

  override updated(): void {
    // For tests and scripts: the session's state on the element itself.
    this.dataset.state = this.status;
  }

  private connect(): void {
    const host = this.querySelector<HTMLElement>(".vnc-host");
    if (!host) return;
    const old = this.rfb;
    this.rfb = null;
    old?.disconnect();
    host.replaceChildren();
    this.status = "connecting";
    // wsProtocols empty: stratad's WebSocket speaks no subprotocol, the frames are binary.
    const rfb = new RFB(host, consoleUrl(location, this.name, "vnc"), { shared: true, wsProtocols: [] });
    rfb.scaleViewport = true;
    rfb.resizeSession = false;
    rfb.focusOnClick = true;
    rfb.background = "#1b1f24";
    rfb.addEventListener("connect", () => {
      if (this.rfb !== rfb) return;
      this.status = "connected";
      host.querySelector("canvas")?.setAttribute("aria-label", `Screen of ${this.name}`);
    });
    rfb.addEventListener("disconnect", (e: Event) => {
      if (this.rfb !== rfb) return;
      const clean = (e as CustomEvent<{ clean: boolean }>).detail?.clean;
      this.status = clean ? "closed" : "disconnected";
    });
    rfb.addEventListener("desktopname", (e: Event) => {
      this.desktop = (e as CustomEvent<{ name: string }>).detail?.name ?? "";
    });
    this.rfb = rfb;
  }

  private ctrlAltDel(): void {
    this.rfb?.sendCtrlAltDel();
    this.rfb?.focus();
  }

  private sendCombo(): void {
    const select = this.querySelector<HTMLSelectElement>("select.vnc-keys");
    const keys = select ? KEY_COMBOS[select.value] : undefined;
    if (!keys || !this.rfb) return;
    for (const [keysym, code, down] of keySequence(keys)) this.rfb.sendKey(keysym, code, down);
    this.rfb.focus();
  }

  // Types the text field's content into the guest as key presses (a paste without a
  // guest clipboard agent).
  private typeText(e: Event): void {
    e.preventDefault();
    const input = this.querySelector<HTMLTextAreaElement>("textarea.vnc-paste");
    if (!input || !this.rfb) return;
    for (const keysym of textKeysyms(input.value)) this.rfb.sendKey(keysym, null);
    input.value = "";
    this.rfb.focus();
  }

  override render() {
    const up = this.status === "connected";
    const text =
      this.status === "disconnected"
        ? "disconnected (no display: the VM may be stopped, or the host unreachable)"
        : this.status;
    return html`
      <div class="toolbar" role="toolbar" aria-label="Graphical console">
        <span class="badge ${up ? "state-running" : "state-stopped"}" role="status">display ${text}</span>
        ${up
          ? html`<button type="button" class="secondary" @click=${() => this.ctrlAltDel()}>Send Ctrl-Alt-Del</button>
              <select class="vnc-keys" aria-label="Key combination">
                ${Object.keys(KEY_COMBOS).map((k) => html`<option value=${k}>${k}</option>`)}
              </select>
              <button type="button" class="secondary" @click=${() => this.sendCombo()}>Send keys</button>`
          : html`<button type="button" class="secondary" @click=${() => this.connect()}>Reconnect</button>`}
        ${this.desktop ? html`<span class="muted">${this.desktop}</span>` : ""}
      </div>
      <div class="vnc-host" role="application" aria-label="Graphical console of ${this.name}"></div>
      <form class="vnc-type" @submit=${(e: Event) => this.typeText(e)}>
        <label for="vnc-paste-${this.name}">Type text into the guest</label>
        <textarea id="vnc-paste-${this.name}" class="vnc-paste" rows="2"></textarea>
        <button type="submit" class="secondary" ?disabled=${!up}>Type</button>
      </form>
    `;
  }
}
customElements.define("strata-graphical-console", GraphicalConsole);
