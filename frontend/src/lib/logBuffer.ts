// The log view's memory: entries in offset order, each offset once. The
// stream may replay entries already shown (a reconnect resumes from the last
// offset + 1, but a server may still resend): those are dropped, so the view
// never shows a line twice, and `nextOffset` is where to resume without a gap.

export interface LogEntry {
  offset: number;
  ts?: string;
  /** build, app or event. */
  source?: string;
  instance?: string;
  /** stdout or stderr. */
  stream?: string;
  line: string;
  deployment_id?: string | null;
}

/** The server could not start where asked: those entries are gone. */
export interface LogSkip {
  from: number;
  to: number;
  /** expired: removed by the log's retention; reset: the log starts again at lower offsets. */
  reason: "expired" | "reset";
}

export interface LogFilter {
  /** Case-insensitive text to look for in the line. */
  text: string;
  /** "" for every source. */
  source: string;
}

export class LogBuffer {
  private entries: LogEntry[] = [];
  private lastOffset: number;
  /** Entries dropped from the front to stay within capacity. */
  dropped = 0;
  /** Grows on every change, for React to notice. */
  version = 0;

  constructor(
    readonly capacity = 200_000,
    from = 0,
  ) {
    this.lastOffset = from - 1;
  }

  get length(): number {
    return this.entries.length;
  }

  /** Where to resume: the offset after the last one held. */
  get nextOffset(): number {
    return this.lastOffset + 1;
  }

  at(i: number): LogEntry {
    return this.entries[i];
  }

  all(): readonly LogEntry[] {
    return this.entries;
  }

  /** Adds the entries that are new; answers how many were. */
  push(batch: readonly LogEntry[]): number {
    let added = 0;
    for (const entry of batch) {
      if (!Number.isFinite(entry.offset) || entry.offset <= this.lastOffset) continue;
      this.entries.push(entry);
      this.lastOffset = entry.offset;
      added++;
    }
    if (this.entries.length > this.capacity) {
      // Trim a tenth more than needed, so trimming is rare.
      const cut = this.entries.length - this.capacity + Math.floor(this.capacity / 10);
      this.entries.splice(0, cut);
      this.dropped += cut;
    }
    if (added > 0) this.version++;
    return added;
  }

  /**
   * Notes a skip where it happened, as a line of source `berth`, and
   * resumes at `to`. After a reset the entries held name offsets the log
   * gives to other lines now: they go, so that no new line is dropped as
   * already seen.
   */
  skip(skip: LogSkip): void {
    if (!Number.isFinite(skip.from) || !Number.isFinite(skip.to)) return;
    let line: string;
    if (skip.reason === "reset") {
      this.clear();
      line = "the log was reset: it is shown from its new start";
    } else {
      const lines = skip.to - skip.from;
      line = `${lines} ${lines === 1 ? "line is" : "lines are"} no longer kept (older than the log's retention)`;
    }
    // Between the last entry held and the next one: a key of its own.
    this.entries.push({ offset: skip.to - 0.5, source: "berth", line });
    this.lastOffset = skip.to - 1;
    this.version++;
  }

  clear(): void {
    this.dropped += this.entries.length;
    this.entries = [];
    this.version++;
  }
}

export function matches(entry: LogEntry, filter: LogFilter): boolean {
  if (filter.source && entry.source !== filter.source) return false;
  if (filter.text && !entry.line.toLowerCase().includes(filter.text.toLowerCase())) return false;
  return true;
}

/** Indexes of the entries that pass; null when the filter lets everything through. */
export function filterIndexes(buffer: LogBuffer, filter: LogFilter): number[] | null {
  if (!filter.text && !filter.source) return null;
  const out: number[] = [];
  const text = filter.text.toLowerCase();
  const all = buffer.all();
  for (let i = 0; i < all.length; i++) {
    const e = all[i];
    if (filter.source && e.source !== filter.source) continue;
    if (text && !e.line.toLowerCase().includes(text)) continue;
    out.push(i);
  }
  return out;
}

/** One line of a downloaded log: `2026-… [build stderr] text`. */
export function formatLine(e: LogEntry): string {
  const tags = [e.source, e.stream === "stderr" ? "stderr" : null].filter(Boolean).join(" ");
  return `${e.ts ?? ""}${tags ? ` [${tags}]` : ""} ${e.line}`.trimStart();
}

/** The rows a virtualized list draws: those in view plus `overscan` on each side. */
export function visibleWindow(
  scrollTop: number,
  viewportHeight: number,
  rowHeight: number,
  count: number,
  overscan = 20,
): { start: number; end: number } {
  const first = Math.min(Math.floor(Math.max(0, scrollTop) / rowHeight), Math.max(0, count - 1));
  const inView = Math.ceil(viewportHeight / rowHeight) + 1;
  return { start: Math.max(0, first - overscan), end: Math.min(count, first + inView + overscan) };
}
