// Follows an app's log over the WebSocket /apps/{id}/logs/ws: history from
// `from`, then live, one LogEntry per text frame (first a `{skipped}` frame
// when `from` is no longer in the log). Every connection takes a
// fresh single-use ticket (a browser WebSocket cannot send Authorization).
// When the socket drops (network, backend restart) it reconnects by itself
// after a growing delay, resuming at the buffer's next offset, and the
// buffer drops anything already held: no gap, no duplicate.

import { reconnectDelay } from "./events";
import type { LogBuffer, LogEntry, LogSkip } from "../lib/logBuffer";

export type LogStatus =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "reconnecting"; inMs: number; reason: string }
  | { kind: "ended"; reason: string }
  | { kind: "stopped" };

/** The parts of WebSocket used here, so tests can give a fake. */
export interface SocketLike {
  onopen: ((e: Event) => void) | null;
  onmessage: ((e: { data: unknown }) => void) | null;
  onclose: ((e: { code: number; reason: string }) => void) | null;
  onerror: ((e: Event) => void) | null;
  close(code?: number, reason?: string): void;
}

export interface LogStreamOptions {
  appId: string;
  buffer: LogBuffer;
  ticket: () => Promise<string>;
  /** Called after each batch of new entries (at most once per frame of work). */
  onChange: () => void;
  onStatus: (status: LogStatus) => void;
  open?: (url: string) => SocketLike;
  /** ws(s)://host, from the page's address by default. */
  origin?: string;
  backoff?: (attempt: number) => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (id: unknown) => void;
}

export const CLOSE_NORMAL = 1000;

export function logSocketUrl(origin: string, appId: string, from: number, ticket: string): string {
  const q = new URLSearchParams({ from: String(from), ticket });
  return `${origin}/api/v1/apps/${encodeURIComponent(appId)}/logs/ws?${q}`;
}

export function pageWsOrigin(loc: { protocol: string; host: string }): string {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}`;
}

export class LogStream {
  private socket: SocketLike | null = null;
  private timer: unknown = null;
  private attempt = 0;
  private running = false;
  private generation = 0;
  private readonly o: Required<LogStreamOptions>;

  constructor(options: LogStreamOptions) {
    this.o = {
      open: (url) => new WebSocket(url) as unknown as SocketLike,
      origin: typeof location !== "undefined" ? pageWsOrigin(location) : "ws://localhost",
      backoff: reconnectDelay,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
      ...options,
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    void this.connect();
  }

  stop(): void {
    this.running = false;
    this.generation++;
    if (this.timer !== null) this.o.clearTimer(this.timer);
    this.timer = null;
    this.socket?.close(CLOSE_NORMAL, "closed by the page");
    this.socket = null;
    this.o.onStatus({ kind: "stopped" });
  }

  private async connect(): Promise<void> {
    const generation = ++this.generation;
    this.o.onStatus({ kind: "connecting" });
    let ticket: string;
    try {
      ticket = await this.o.ticket();
    } catch {
      if (generation === this.generation) this.retry("could not get a ticket");
      return;
    }
    if (generation !== this.generation || !this.running) return;
    const socket = this.o.open(logSocketUrl(this.o.origin, this.o.appId, this.o.buffer.nextOffset, ticket));
    this.socket = socket;
    socket.onopen = () => {
      if (generation !== this.generation) return;
      this.o.onStatus({ kind: "live" });
    };
    socket.onmessage = (e) => {
      if (generation !== this.generation || typeof e.data !== "string") return;
      let frame: LogEntry | { skipped: LogSkip };
      try {
        frame = JSON.parse(e.data) as LogEntry | { skipped: LogSkip };
      } catch {
        return;
      }
      // Data flowed: the next drop starts the backoff again.
      this.attempt = 0;
      if (frame === null || typeof frame !== "object") return;
      if ("skipped" in frame) {
        this.o.buffer.skip(frame.skipped);
        this.o.onChange();
      } else if (this.o.buffer.push([frame]) > 0) this.o.onChange();
    };
    socket.onerror = () => {
      // onclose follows and decides.
    };
    socket.onclose = (e) => {
      if (generation !== this.generation) return;
      this.socket = null;
      if (e.code === CLOSE_NORMAL) {
        this.running = false;
        this.o.onStatus({ kind: "ended", reason: e.reason || "the log ended" });
        return;
      }
      this.retry(e.reason || "the connection was lost");
    };
  }

  private retry(reason: string): void {
    if (!this.running) return;
    const inMs = this.o.backoff(this.attempt++);
    this.o.onStatus({ kind: "reconnecting", inMs, reason });
    this.timer = this.o.setTimer(() => {
      this.timer = null;
      void this.connect();
    }, inMs);
  }
}
