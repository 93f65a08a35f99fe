// The graphical console in the browser: noVNC's RFB client over the manager's VNC WebSocket
// (GET /api/v1/vms/{name}/vnc, raw RFB bytes relayed to the VM's VNC socket through its
// host's agent). Authenticated like the serial console: the session cookie and the page's
// Origin on the upgrade, no token in the URL (docs/internals/web.md). Loaded on demand by
// the VM page (import("./vnc")), so noVNC stays out of the main bundle.
//
// Scaling: a guest screen larger than the panel is scaled down into it (scaleViewport), one
// that fits is drawn 1:1 (vncScaleDown in format.ts: noVNC's fit would scale it up and blur
// it); the choice is made again when the guest changes its resolution or the panel its
// size. The guest's resolution is never changed from here (resizeSession off). noVNC maps
// pointer coordinates through the scale it drew with, so the pointer has no offset as long
// as the guest takes absolute coordinates (the usb-tablet of hardware profile v1; a legacy
// v0 VM's relative PS/2 mouse can drift from the browser's pointer).
import { LitElement, html } from "lit";
import RFB from "@novnc/novnc";
import { KEY_COMBOS, consoleUrl, keySequence, strokePauseMs, textStrokes, typePaced, vncScaleDown } from "./format";

type Status = "connecting" | "connected" | "closed" | "disconnected";

class GraphicalConsole extends LitElement {
  static override properties = {
    name: { attribute: false },
    status: { state: true },
    desktop: { state: true },
    typing: { state: true },
  };
  name = "";
  status: Status = "connecting";
  desktop = "";
  // "12 of 40 typed" while a text goes out (typePaced), "" otherwise.
  typing = "";
  private rfb: RFB | null = null;
  // Watch the guest's framebuffer size (the canvas's width/height attributes, which noVNC
  // sets to it) and the panel's size, to choose between 1:1 and scaled down.
  private canvasWatch: MutationObserver | null = null;
  private panelWatch: ResizeObserver | null = null;

  protected override createRenderRoot() {
    return this;
  }

  override firstUpdated(): void {
    this.connect();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    this.canvasWatch?.disconnect();
    this.panelWatch?.disconnect();
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
    rfb.scaleViewport = false;
    rfb.resizeSession = false;
    rfb.focusOnClick = true;
    rfb.background = "#1b1f24";
    rfb.addEventListener("connect", () => {
      if (this.rfb !== rfb) return;
      this.status = "connected";
      const canvas = host.querySelector("canvas");
      canvas?.setAttribute("aria-label", `Screen of ${this.name}`);
      this.canvasWatch?.disconnect();
      this.panelWatch?.disconnect();
      if (!canvas) return;
      const choose = () => this.chooseScale(rfb, canvas, host);
      this.canvasWatch = new MutationObserver(choose);
      this.canvasWatch.observe(canvas, { attributes: true, attributeFilter: ["width", "height"] });
      this.panelWatch = new ResizeObserver(choose);
      this.panelWatch.observe(host);
      choose();
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

  private chooseScale(rfb: RFB, canvas: HTMLCanvasElement, host: HTMLElement): void {
    if (this.rfb !== rfb) return;
    const down = vncScaleDown({ w: canvas.width, h: canvas.height }, { w: host.clientWidth, h: host.clientHeight });
    if (rfb.scaleViewport !== down) rfb.scaleViewport = down;
    // For tests: how the screen is drawn.
    this.dataset.scale = down ? "fit" : "1:1";
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
  // guest clipboard agent), paced so the guest's keyboard buffer never overflows (format.ts).
  // Stops when the session ends or another session starts.
  private async typeText(e: Event): Promise<void> {
    e.preventDefault();
    const input = this.querySelector<HTMLTextAreaElement>("textarea.vnc-paste");
    const rfb = this.rfb;
    if (!input || !rfb || this.typing) return;
    const keys = textStrokes(input.value);
    input.value = "";
    const sleep = (ms: number) => new Promise<void>((res) => window.setTimeout(res, ms));
    const sent = await typePaced(keys, (stroke) => { for (const [k, down] of stroke) rfb.sendKey(k, null, down); }, sleep, {
      batch: 1,
      pauseMs: strokePauseMs,
      cancelled: () => this.rfb !== rfb || this.status !== "connected",
      progress: (n) => { this.typing = `${n} of ${keys.length} keys typed`; },
    });
    this.typing = "";
    this.dataset.typed = String(sent);
    if (this.rfb === rfb) rfb.focus();
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
        <button type="submit" class="secondary" ?disabled=${!up || this.typing !== ""}>Type</button>
        <span class="muted" role="status">${this.typing}</span>
      </form>
    `;
  }
}
customElements.define("strata-graphical-console", GraphicalConsole);
