import { describe, expect, it } from "vitest";
import type { Quota } from "../api/types";
import { buildResources, formatCpu, formatMemory, quotaLines } from "./resources";

const current = { memory_mb: 512, cpu_millis: 1000 };
const max = { memory_mb: 4096, cpu_millis: 4000 };

describe("the resources form", () => {
  it("sends only what changed", () => {
    expect(buildResources({ memoryMb: "512", cpuMillis: "1000" }, current, max)).toEqual({ errors: {}, body: null });
    expect(buildResources({ memoryMb: " 1024 ", cpuMillis: "1000" }, current, max).body).toEqual({ memory_mb: 1024 });
    expect(buildResources({ memoryMb: "256", cpuMillis: "250" }, current, max).body).toEqual({
      memory_mb: 256,
      cpu_millis: 250,
    });
  });

  it("names the field of each bad value, within the server's bounds", () => {
    const { errors, body } = buildResources({ memoryMb: "8192", cpuMillis: "1.5" }, current, max);
    expect(body).toBeNull();
    expect(errors).toEqual({
      "resources.memory_mb": "must be between 64 and 4096 MB",
      "resources.cpu_millis": "must be a whole number",
    });
    expect(buildResources({ memoryMb: "32", cpuMillis: "100" }, current).errors).toEqual({
      "resources.memory_mb": "must be at least 64 MB",
    });
  });
});

describe("formatting", () => {
  it("says cores and gigabytes when they are whole", () => {
    expect(formatCpu(1000)).toBe("1 core");
    expect(formatCpu(20000)).toBe("20 cores");
    expect(formatCpu(1500)).toBe("1.5 cores");
    expect(formatCpu(250)).toBe("250 millicores");
    expect(formatMemory(512)).toBe("512 MB");
    expect(formatMemory(10240)).toBe("10 GB");
    expect(formatMemory(1536)).toBe("1536 MB");
  });

  it("lists the quotas resources count toward, marking full ones", () => {
    const quota: Quota = {
      apps: { used: 20, limit: 20 },
      queued_deployments: { used: 0, limit: 10 },
      streams: { used: 1, limit: 20 },
      log_reads: { used: 0, limit: 4 },
      memory_mb: { used: 1024, limit: 10240 },
      cpu_millis: { used: 2000, limit: 20000 },
      app_default: current,
      app_max: max,
    };
    const lines = quotaLines(quota);
    expect(lines[0]).toEqual({ label: "Memory", used: "1 GB", limit: "10 GB", full: false });
    expect(lines.find((l) => l.label === "Apps")?.full).toBe(true);
  });
});
