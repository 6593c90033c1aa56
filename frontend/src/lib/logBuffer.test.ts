import { describe, expect, it } from "vitest";
import { filterIndexes, formatLine, LogBuffer, matches, visibleWindow, type LogEntry } from "./logBuffer";

const e = (offset: number, line = `line ${offset}`, source = "app"): LogEntry => ({ offset, line, source, stream: "stdout", ts: "t" });

describe("LogBuffer", () => {
  it("keeps entries in order, each offset once, and knows where to resume", () => {
    const b = new LogBuffer();
    expect(b.nextOffset).toBe(0);
    expect(b.push([e(0), e(1), e(2)])).toBe(3);
    // A reconnect that replays from an earlier offset adds only the new ones.
    expect(b.push([e(1), e(2), e(3)])).toBe(1);
    expect(b.all().map((x) => x.offset)).toEqual([0, 1, 2, 3]);
    expect(b.nextOffset).toBe(4);
  });

  it("starts from a given offset and accepts gaps the log itself has", () => {
    const b = new LogBuffer(100, 50);
    expect(b.nextOffset).toBe(50);
    b.push([e(49), e(50), e(55)]);
    expect(b.all().map((x) => x.offset)).toEqual([50, 55]);
    expect(b.nextOffset).toBe(56);
  });

  it("marks a gap the log's retention made and goes on after it", () => {
    const b = new LogBuffer(100, 10);
    b.skip({ from: 10, to: 100, reason: "expired" });
    b.push([e(100), e(101)]);
    expect(b.all().map((x) => x.line)).toEqual([
      "90 lines are no longer kept (older than the log's retention)",
      "line 100",
      "line 101",
    ]);
    expect(b.at(0).source).toBe("berth");
    expect(b.nextOffset).toBe(102);
  });

  it("starts over after a reset rather than drop new lines as already seen", () => {
    const b = new LogBuffer();
    b.push([e(0), e(1), e(2)]);
    b.skip({ from: 3, to: 1, reason: "reset" });
    expect(b.push([e(1), e(2)])).toBe(2);
    expect(b.all().map((x) => x.line)).toEqual([
      "the log was reset: it is shown from its new start",
      "line 1",
      "line 2",
    ]);
    expect(b.nextOffset).toBe(3);
  });

  it("bumps its version only when something was added", () => {
    const b = new LogBuffer();
    b.push([e(0)]);
    const v = b.version;
    b.push([e(0)]);
    expect(b.version).toBe(v);
  });

  it("drops the oldest lines beyond its capacity, still resuming after the newest", () => {
    const b = new LogBuffer(100);
    b.push(Array.from({ length: 250 }, (_, i) => e(i)));
    expect(b.length).toBeLessThanOrEqual(100);
    expect(b.at(b.length - 1).offset).toBe(249);
    expect(b.dropped + b.length).toBe(250);
    expect(b.nextOffset).toBe(250);
  });

  it("holds 100,000 lines and filters them quickly", () => {
    const b = new LogBuffer();
    b.push(Array.from({ length: 100_000 }, (_, i) => e(i, i % 10 === 0 ? `ERROR ${i}` : `ok ${i}`, i % 2 ? "app" : "build")));
    const t = performance.now();
    const idx = filterIndexes(b, { text: "error", source: "build" })!;
    expect(performance.now() - t).toBeLessThan(500);
    expect(idx.length).toBe(10_000);
  });
});

describe("filters", () => {
  it("match on text (any case) and source", () => {
    expect(matches(e(1, "Hello World"), { text: "world", source: "" })).toBe(true);
    expect(matches(e(1, "Hello", "build"), { text: "", source: "app" })).toBe(false);
    const b = new LogBuffer();
    b.push([e(0, "a"), e(1, "b")]);
    expect(filterIndexes(b, { text: "", source: "" })).toBeNull();
    expect(filterIndexes(b, { text: "B", source: "" })).toEqual([1]);
  });
});

describe("formatLine", () => {
  it("writes time, source, stderr and the line", () => {
    expect(formatLine({ offset: 1, ts: "2026-01-01T00:00:00Z", source: "build", stream: "stderr", line: "oops" })).toBe(
      "2026-01-01T00:00:00Z [build stderr] oops",
    );
    expect(formatLine({ offset: 1, line: "bare" })).toBe("bare");
  });
});

describe("visibleWindow", () => {
  it("draws only the rows in view plus the overscan", () => {
    expect(visibleWindow(0, 400, 20, 100_000, 10)).toEqual({ start: 0, end: 31 });
    expect(visibleWindow(20_000, 400, 20, 100_000, 10)).toEqual({ start: 990, end: 1031 });
    expect(visibleWindow(1e9, 400, 20, 50, 10)).toEqual({ start: 39, end: 50 });
    expect(visibleWindow(0, 400, 20, 0, 10)).toEqual({ start: 0, end: 0 });
  });
});
