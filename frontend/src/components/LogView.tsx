import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { LogStream, type LogStatus } from "../api/logStream";
import { useSession } from "../api/session";
import { filterIndexes, formatLine, LogBuffer, visibleWindow, type LogEntry, type LogFilter } from "../lib/logBuffer";

const ROW = 20; // px; keep in step with .log-row in styles.css

/**
 * An app's log, build and runtime: history, then live. Only the rows in view
 * are drawn, so 100,000 lines stay responsive. It follows the end until the
 * user scrolls up (or presses Pause), and resumes with Follow.
 */
export function LogView({ appId, appName }: { appId: string; appName: string }) {
  const { client } = useSession();
  const [buffer, setBuffer] = useState(() => new LogBuffer());
  const [version, setVersion] = useState(0);
  const [status, setStatus] = useState<LogStatus>({ kind: "connecting" });
  const [follow, setFollow] = useState(true);
  const [filter, setFilter] = useState<LogFilter>({ text: "", source: "" });
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(400);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const fresh = new LogBuffer();
    setBuffer(fresh);
    let frame = 0;
    const stream = new LogStream({
      appId,
      buffer: fresh,
      ticket: () => client.ticket(),
      // History can arrive by the thousand: draw at most once per frame.
      onChange: () => {
        if (!frame)
          frame = requestAnimationFrame(() => {
            frame = 0;
            setVersion(fresh.version);
          });
      },
      onStatus: setStatus,
    });
    stream.start();
    return () => {
      stream.stop();
      cancelAnimationFrame(frame);
    };
  }, [appId, client]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setViewport(el.clientHeight);
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const indexes = useMemo(() => filterIndexes(buffer, filter), [buffer, filter, version]);
  const count = indexes ? indexes.length : buffer.length;

  // Following keeps the newest line in view, also when the box changes
  // height (a phone turned, a window resized).
  useLayoutEffect(() => {
    const el = box.current;
    if (follow && el) el.scrollTop = el.scrollHeight;
  }, [follow, count, version, viewport]);

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    setScrollTop(el.scrollTop);
    const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < ROW * 2;
    if (atEnd !== follow) setFollow(atEnd);
  };

  const download = () => {
    const text = buffer
      .all()
      .map(formatLine)
      .join("\n");
    const url = URL.createObjectURL(new Blob([text + "\n"], { type: "text/plain" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${appName}.log`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  const { start, end } = visibleWindow(scrollTop, viewport, ROW, count);
  const rows: { entry: LogEntry; i: number }[] = [];
  for (let i = start; i < end; i++) rows.push({ entry: buffer.at(indexes ? indexes[i] : i), i });

  return (
    <div className="logs">
      <div className="log-tools">
        <div className="field">
          <label htmlFor="log-filter">Filter</label>
          <input
            id="log-filter"
            type="search"
            value={filter.text}
            placeholder="text in the line"
            onChange={(e) => setFilter((f) => ({ ...f, text: e.target.value }))}
          />
        </div>
        <div className="field">
          <label htmlFor="log-source">Source</label>
          <select
            id="log-source"
            value={filter.source}
            onChange={(e) => setFilter((f) => ({ ...f, source: e.target.value }))}
          >
            <option value="">All</option>
            <option value="build">Build</option>
            <option value="app">App</option>
            <option value="event">Events</option>
            <option value="router">Requests</option>
          </select>
        </div>
        <button type="button" className="secondary" onClick={() => setFollow(!follow)} aria-pressed={!follow}>
          {follow ? "Pause" : "Follow"}
        </button>
        <button type="button" className="secondary" onClick={download} disabled={buffer.length === 0}>
          Download
        </button>
      </div>
      <p className="log-status muted" role="status" aria-live="polite">
        {statusText(status)} · {count.toLocaleString()} {count === 1 ? "line" : "lines"}
        {indexes ? ` of ${buffer.length.toLocaleString()}` : ""}
        {buffer.dropped > 0 ? ` (the oldest ${buffer.dropped.toLocaleString()} are no longer kept)` : ""}
      </p>
      <div className="log-box" ref={box} onScroll={onScroll} role="log" aria-label="App log" tabIndex={0}>
        {count === 0 ? (
          <p className="log-empty muted">
            {indexes ? "No line matches the filter." : status.kind === "live" ? "No log lines yet." : ""}
          </p>
        ) : (
          <div style={{ height: count * ROW, position: "relative" }}>
            {rows.map(({ entry, i }) => (
              <div
                key={entry.offset}
                className={entry.stream === "stderr" ? "log-row log-stderr" : "log-row"}
                style={{ top: i * ROW }}
              >
                <span className="log-time">{entry.ts ? entry.ts.slice(11, 19) : ""}</span>
                <span className={`log-source src-${entry.source ?? "app"}`}>{entry.source ?? ""}</span>
                {entry.line}
              </div>
            ))}
          </div>
        )}
      </div>
    </div>
  );
}

function statusText(s: LogStatus): string {
  switch (s.kind) {
    case "connecting":
      return "Connecting…";
    case "live":
      return "Live";
    case "reconnecting":
      return `Connection lost (${s.reason}); retrying in ${Math.round(s.inMs / 1000)} s`;
    case "ended":
      return `Stopped: ${s.reason}`;
    case "stopped":
      return "Stopped";
  }
}
