import { describe, expect, it, vi } from "vitest";
import { LogBuffer } from "../lib/logBuffer";
import { LogStream, logSocketUrl, pageWsOrigin, type LogStatus, type SocketLike } from "./logStream";

class FakeSocket implements SocketLike {
  onopen: ((e: Event) => void) | null = null;
  onmessage: ((e: { data: unknown }) => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  closed: { code?: number; reason?: string } | null = null;
  constructor(readonly url: string) {}
  close(code?: number, reason?: string) {
    this.closed = { code, reason };
  }
  open() {
    this.onopen?.(new Event("open"));
  }
  send(offsets: number[]) {
    for (const offset of offsets) this.onmessage?.({ data: JSON.stringify({ offset, line: `l${offset}`, source: "app" }) });
  }
  drop(code = 1006, reason = "") {
    this.onclose?.({ code, reason });
  }
}

function setup(tickets: (string | Error)[] = ["t1", "t2", "t3", "t4"]) {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const statuses: LogStatus[] = [];
  const buffer = new LogBuffer();
  const onChange = vi.fn();
  const queue = [...tickets];
  const stream = new LogStream({
    appId: "app-1",
    buffer,
    ticket: async () => {
      const t = queue.shift();
      if (t === undefined || t instanceof Error) throw t ?? new Error("none");
      return t;
    },
    onChange,
    onStatus: (s) => statuses.push(s),
    open: (url) => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    origin: "ws://berth.test",
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => {},
  });
  const flush = () => new Promise((r) => setTimeout(r, 0));
  return { stream, sockets, timers, statuses, buffer, onChange, flush };
}

describe("log socket address", () => {
  it("carries the offset and the ticket", () => {
    expect(logSocketUrl("wss://b.test", "a b", 42, "t/1")).toBe("wss://b.test/api/v1/apps/a%20b/logs/ws?from=42&ticket=t%2F1");
    expect(pageWsOrigin({ protocol: "https:", host: "b.test" })).toBe("wss://b.test");
    expect(pageWsOrigin({ protocol: "http:", host: "127.0.0.1:8080" })).toBe("ws://127.0.0.1:8080");
  });
});

describe("LogStream", () => {
  it("replays from 0, then follows", async () => {
    const { stream, sockets, statuses, buffer, onChange, flush } = setup();
    stream.start();
    await flush();
    expect(sockets[0].url).toBe("ws://berth.test/api/v1/apps/app-1/logs/ws?from=0&ticket=t1");
    sockets[0].open();
    sockets[0].send([0, 1, 2]);
    expect(buffer.all().map((e) => e.line)).toEqual(["l0", "l1", "l2"]);
    expect(onChange).toHaveBeenCalledTimes(3);
    expect(statuses.map((s) => s.kind)).toEqual(["connecting", "live"]);
  });

  it("after a drop, reconnects with a new ticket from the last offset + 1: no gap, no duplicate", async () => {
    const { stream, sockets, timers, statuses, buffer, flush } = setup();
    stream.start();
    await flush();
    sockets[0].open();
    sockets[0].send([0, 1, 2]);
    sockets[0].drop(1006);
    expect(statuses.at(-1)).toEqual({ kind: "reconnecting", inMs: 1000, reason: "the connection was lost" });
    timers[0].fn();
    await flush();
    expect(sockets[1].url).toBe("ws://berth.test/api/v1/apps/app-1/logs/ws?from=3&ticket=t2");
    sockets[1].open();
    // Even if a server resent an entry, it is shown once.
    sockets[1].send([2, 3, 4]);
    expect(buffer.all().map((e) => e.offset)).toEqual([0, 1, 2, 3, 4]);
  });

  it("a reconnect to a log that was reset shows the new lines, not nothing", async () => {
    const { stream, sockets, timers, buffer, flush } = setup();
    stream.start();
    await flush();
    sockets[0].open();
    sockets[0].send([0, 1, 2, 3, 4]);
    sockets[0].drop(1006);
    timers[0].fn();
    await flush();
    sockets[1].open();
    sockets[1].onmessage?.({ data: JSON.stringify({ skipped: { from: 5, to: 0, reason: "reset" } }) });
    sockets[1].send([0, 1]);
    expect(buffer.all().map((e) => e.line)).toEqual(["the log was reset: it is shown from its new start", "l0", "l1"]);
  });

  it("backs off while the backend is away, and starts over once data flows", async () => {
    const { stream, sockets, timers, flush } = setup(["t1", new Error("down"), "t3", "t4", "t5"]);
    stream.start();
    await flush();
    sockets[0].drop(1001, "the server is shutting down");
    timers.at(-1)!.fn(); // ticket fails
    await flush();
    timers.at(-1)!.fn(); // t3
    await flush();
    sockets[1].drop(1006);
    expect(timers.map((t) => t.ms)).toEqual([1000, 2000, 4000]);
    timers.at(-1)!.fn(); // t4
    await flush();
    sockets[2].open();
    sockets[2].send([0]);
    sockets[2].drop(1006);
    expect(timers.at(-1)!.ms).toBe(1000);
  });

  it("a normal close means the log ended: no reconnect", async () => {
    const { stream, sockets, timers, statuses, flush } = setup();
    stream.start();
    await flush();
    sockets[0].drop(1000, "the log ended");
    expect(statuses.at(-1)).toEqual({ kind: "ended", reason: "the log ended" });
    expect(timers).toHaveLength(0);
  });

  it("stop() closes the socket and ignores what comes after", async () => {
    const { stream, sockets, timers, buffer, flush } = setup();
    stream.start();
    await flush();
    sockets[0].open();
    stream.stop();
    expect(sockets[0].closed).toEqual({ code: 1000, reason: "closed by the page" });
    sockets[0].send([0]);
    sockets[0].drop(1006);
    expect(buffer.length).toBe(0);
    expect(timers).toHaveLength(0);
  });
});
