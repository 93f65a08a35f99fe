// The live event stream (GET /api/v1/events/stream) read through fetch: EventSource only
// delivers events whose type it was told in advance, and Strata names each event after its
// action (vm.start, host.up, ...). The session cookie authenticates it (same origin); after
// a drop it reconnects with Last-Event-ID, so no event in between is lost. No polling.
import type { StrataEvent } from "./api/client";

export interface SseMessage {
  id: string;
  event: string;
  data: string;
}

// Incremental text/event-stream parser: feed chunks, get whole messages.
export class SseParser {
  // The last event id the stream set (SSE: an id field sets it at the block's end even
  // without data — stratad starts each stream with one, so a client that got no event yet
  // can still resume with Last-Event-ID).
  lastEventId = "";
  private buffer = "";
  private id = "";
  private event = "";
  private data: string[] = [];

  feed(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    let nl: number;
    while ((nl = this.buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + (this.buffer.startsWith("\r\n", nl) ? 2 : 1));
      if (line === "") {
        this.lastEventId = this.id;
        if (this.data.length > 0)
          out.push({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;  // comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
      else if (field === "id") this.id = value;
    }
    return out;
  }
}

export interface EventFeedHandlers {
  onEvent(e: StrataEvent): void;
  onState?(connected: boolean): void;
}

// Follows the stream until stop(); reconnects after 1, 2, 4 ... 15 s.
export class EventFeed {
  private lastId = "";
  private abort: AbortController | null = null;
  private stopped = false;
  private retryMs = 1000;

  // url: the events stream, or another SSE stream of the API (a host's metrics stream)
  constructor(
    private readonly handlers: EventFeedHandlers,
    private readonly url = "/api/v1/events/stream",
  ) {}

  start(): void {
    this.stopped = false;
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.once();
      } catch {
        // dropped: reconnect below
      }
      this.handlers.onState?.(false);
      if (this.stopped) return;
      await new Promise((r) => setTimeout(r, this.retryMs));
      this.retryMs = Math.min(this.retryMs * 2, 15000);
    }
  }

  private async once(): Promise<void> {
    this.abort = new AbortController();
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (this.lastId) headers["Last-Event-ID"] = this.lastId;
    const resp = await fetch(this.url, {
      credentials: "same-origin",
      headers,
      signal: this.abort.signal,
    });
    if (!resp.ok || !resp.body) throw new Error(`events stream: HTTP ${resp.status}`);
    this.handlers.onState?.(true);
    this.retryMs = 1000;
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const m of parser.feed(value)) {
        if (m.id) this.lastId = m.id;
        try {
          this.handlers.onEvent(JSON.parse(m.data) as StrataEvent);
        } catch {
          // not JSON: ignored
        }
      }
      if (parser.lastEventId) this.lastId = parser.lastEventId;
    }
  }
}
