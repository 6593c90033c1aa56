import { describe, expect, it } from "vitest";
import { duration, queueLabel, shortSha, timeAgo, waitingLabel } from "./format";

describe("format", () => {
  const now = Date.parse("2026-03-01T12:00:00Z");
  it("timeAgo", () => {
    expect(timeAgo("2026-03-01T11:59:40Z", now)).toBe("just now");
    expect(timeAgo("2026-03-01T11:59:00Z", now)).toBe("1 minute ago");
    expect(timeAgo("2026-03-01T11:30:00Z", now)).toBe("30 minutes ago");
    expect(timeAgo("2026-03-01T09:00:00Z", now)).toBe("3 hours ago");
    expect(timeAgo("2026-02-28T12:00:00Z", now)).toBe("yesterday");
    expect(timeAgo("2025-12-01T12:00:00Z", now)).toBe("2025-12-01");
    expect(timeAgo("garbage", now)).toBe("");
  });
  it("shortSha", () => {
    expect(shortSha("0123456789abcdef")).toBe("0123456");
    expect(shortSha(null)).toBe("");
  });
  it("duration", () => {
    expect(duration("2026-03-01T12:00:00Z", "2026-03-01T12:00:42Z")).toBe("42 s");
    expect(duration("2026-03-01T12:00:00Z", "2026-03-01T12:01:05Z")).toBe("1 min 5 s");
    expect(duration("2026-03-01T12:00:00Z", "2026-03-01T12:02:00Z")).toBe("2 min");
    expect(duration("2026-03-01T12:00:00Z", null)).toBe("");
  });
});

describe("queueLabel", () => {
  it("says the place in line and, once berth knows, when it starts", () => {
    expect(queueLabel(1)).toBe("next in line");
    expect(queueLabel(3, 130)).toBe("3rd in line · starts in about 2 min");
    expect(queueLabel(2, 20)).toBe("2nd in line · starts in under a minute");
    expect(queueLabel(11, null)).toBe("11th in line");
    expect(queueLabel(21)).toBe("21st in line");
  });
});

describe("waitingLabel", () => {
  const now = Date.parse("2026-12-05T10:00:00Z");
  it("says why the work waits and when it is tried again", () => {
    expect(waitingLabel("the container engine is unavailable", "2026-12-05T10:00:40Z", now)).toBe(
      "the container engine is unavailable, next attempt in 40 s",
    );
    expect(waitingLabel("the registry is unavailable", "2026-12-05T10:03:00Z", now)).toBe(
      "the registry is unavailable, next attempt in 3 min",
    );
    expect(waitingLabel("the registry is unavailable", "2026-12-05T09:59:59Z", now)).toBe(
      "the registry is unavailable, trying again now",
    );
  });
});
