// The base of every page that loads from the API: load once, then again (debounced) when a
// live event it wants arrives; no polling.
import { LitElement, html, nothing, type PropertyValues } from "lit";
import type { StrataEvent } from "./api/client";
import type { Role } from "./format";

export abstract class LivePage extends LitElement {
  static override properties = {
    events: { attribute: false },
    role: { attribute: false },
    error: { state: true },
    loaded: { state: true },
  };
  events: StrataEvent[] = [];
  role: Role | "" = "";
  error = "";
  loaded = false;
  private timer: number | undefined;

  protected override createRenderRoot() {
    return this;
  }

  override connectedCallback(): void {
    super.connectedCallback();
    void this.refresh();
  }

  override disconnectedCallback(): void {
    super.disconnectedCallback();
    window.clearTimeout(this.timer);
  }

  protected override updated(changed: PropertyValues): void {
    const before = changed.get("events") as StrataEvent[] | undefined;
    if (before !== undefined && this.events[0] !== before[0] && this.wants(this.events[0])) {
      window.clearTimeout(this.timer);
      this.timer = window.setTimeout(() => void this.refresh(), 300);
    }
  }

  protected async refresh(): Promise<void> {
    const first = !this.loaded;
    try {
      await this.load();
      this.error = "";
    } catch (e) {
      this.error = e instanceof Error ? e.message : String(e);
    }
    this.loaded = true;
    // Performance marks of the first load (scripts/bench web prints them): the data is in,
    // then it is rendered.
    if (first) {
      performance.mark(`strata:${this.localName}:data`);
      void this.updateComplete.then(() => performance.mark(`strata:${this.localName}:rendered`));
    } else {
      performance.mark(`strata:${this.localName}:refreshed`);
    }
  }

  protected abstract load(): Promise<void>;

  // Whether a live event should reload this page (detail pages look at their target only).
  protected wants(_e: StrataEvent | undefined): boolean {
    return true;
  }

  protected renderError() {
    return this.error ? html`<p class="error" role="alert">${this.error}</p>` : nothing;
  }
}
