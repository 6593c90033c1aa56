import { describe, expect, it, vi } from "vitest";
import { DeploymentEvents, reconnectDelay, type SourceLike } from "./events";

class FakeSource implements SourceLike {
  onopen: ((e: Event) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  closed = false;
  private readonly handlers = new Map<string, ((e: MessageEvent) => void)[]>();
  constructor(readonly url: string) {}
  addEventListener(type: string, listener: (e: MessageEvent) => void) {
    this.handlers.set(type, [...(this.handlers.get(type) ?? []), listener]);
  }
  close() {
    this.closed = true;
  }
  open() {
    this.onopen?.(new Event("open"));
  }
  fail() {
    this.onerror?.(new Event("error"));
  }
  send(type: string, data: string) {
    for (const h of this.handlers.get(type) ?? []) h(new MessageEvent(type, { data }));
  }
}

function setup(tickets: (string | Error)[]) {
  const sources: FakeSource[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const queue = [...tickets];
  const events = new DeploymentEvents({
    ticket: async () => {
      const t = queue.shift();
      if (t instanceof Error || t === undefined) throw t ?? new Error("no ticket");
      return t;
    },
    open: (url) => {
      const s = new FakeSource(url);
      sources.push(s);
      return s;
    },
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => {},
  });
  const flush = () => new Promise((r) => setTimeout(r, 0));
  return { events, sources, timers, flush };
}

describe("reconnectDelay", () => {
  it("doubles from 1 s up to 30 s", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20].map(reconnectDelay)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });
});

describe("DeploymentEvents", () => {
  it("opens the stream with a ticket and hands out deployment events", async () => {
    const { events, sources, flush } = setup(["t1"]);
    const deployment = vi.fn();
    const connection = vi.fn();
    events.subscribe({ deployment, connection });
    events.start();
    await flush();
    expect(sources[0].url).toBe("/api/v1/events?ticket=t1");
    sources[0].open();
    expect(connection).toHaveBeenLastCalledWith(true);
    const e = { deployment_id: "d", app_id: "a", state: "building", changed_at: "2026-01-01T00:00:00Z" };
    sources[0].send("deployment", JSON.stringify(e));
    sources[0].send("deployment", "not json");
    expect(deployment).toHaveBeenCalledTimes(1);
    expect(deployment).toHaveBeenCalledWith(e);
  });

  it("reconnects with a new ticket after an error, and asks for a resync once back", async () => {
    const { events, sources, timers, flush } = setup(["t1", "t2"]);
    const resync = vi.fn();
    const connection = vi.fn();
    events.subscribe({ resync, connection });
    events.start();
    await flush();
    sources[0].open();
    expect(resync).not.toHaveBeenCalled(); // the first connection is not a resync
    sources[0].fail();
    expect(sources[0].closed).toBe(true);
    expect(connection).toHaveBeenLastCalledWith(false);
    expect(timers.map((t) => t.ms)).toEqual([1000]);
    timers[0].fn();
    await flush();
    expect(sources[1].url).toBe("/api/v1/events?ticket=t2");
    sources[1].open();
    expect(resync).toHaveBeenCalledTimes(1);
    expect(connection).toHaveBeenLastCalledWith(true);
  });

  it("backs off further while tickets cannot be had, and resets after a success", async () => {
    const { events, sources, timers, flush } = setup([new Error("offline"), new Error("offline"), "t3", "t4"]);
    events.start();
    await flush();
    timers.at(-1)!.fn();
    await flush();
    timers.at(-1)!.fn();
    await flush();
    expect(timers.map((t) => t.ms)).toEqual([1000, 2000]);
    sources[0].open();
    sources[0].fail();
    expect(timers.map((t) => t.ms)).toEqual([1000, 2000, 1000]);
  });

  it("passes the server's resync on, and stop() closes and ignores late events", async () => {
    const { events, sources, timers, flush } = setup(["t1"]);
    const resync = vi.fn();
    const deployment = vi.fn();
    events.subscribe({ resync, deployment });
    events.start();
    await flush();
    sources[0].open();
    sources[0].send("resync", "{}");
    expect(resync).toHaveBeenCalledTimes(1);
    events.stop();
    expect(sources[0].closed).toBe(true);
    sources[0].send("deployment", JSON.stringify({ app_id: "a" }));
    sources[0].fail();
    expect(deployment).not.toHaveBeenCalled();
    expect(timers).toHaveLength(0);
  });
});
