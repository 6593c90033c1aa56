import { describe, expect, it } from "vitest";
import { instanceDisplay, isInProgress, stateDisplay, triggerLabel, runtimeDisplay } from "./states";

describe("stateDisplay", () => {
  it.each([
    ["queued", "Queued", "neutral", false],
    ["cloning", "Cloning", "progress", false],
    ["building", "Building", "progress", false],
    ["pushing", "Pushing image", "progress", false],
    ["deploying", "Deploying", "progress", false],
    ["live", "Live", "success", true],
    ["failed", "Failed", "danger", true],
    ["timed_out", "Timed out", "danger", true],
    ["cancelled", "Cancelled", "muted", true],
    ["superseded", "Superseded", "muted", true],
    ["rolled_back", "Rolled back", "warning", true],
  ])("%s → %s (%s)", (state, label, tone, final) => {
    expect(stateDisplay(state)).toMatchObject({ label, tone, final });
  });

  it("counts the steps to live in pipeline order", () => {
    const steps = ["queued", "cloning", "building", "pushing", "deploying", "live"].map((s) => stateDisplay(s).step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("shows an app without deployments as not deployed", () => {
    expect(stateDisplay(null)).toEqual({ label: "Not deployed", tone: "muted", final: true });
    expect(stateDisplay(undefined).label).toBe("Not deployed");
  });

  it("shows a state it does not know readably", () => {
    expect(stateDisplay("waiting_for_quota")).toEqual({ label: "Waiting for quota", tone: "neutral", final: true });
  });

  it("knows which states are still moving", () => {
    expect(isInProgress("building")).toBe(true);
    expect(isInProgress("live")).toBe(false);
    expect(isInProgress(null)).toBe(false);
  });
});

describe("triggerLabel", () => {
  it("names who started it", () => {
    expect(triggerLabel("push", "octocat")).toBe("push by octocat");
    expect(triggerLabel("push")).toBe("push");
    expect(triggerLabel("user")).toBe("manual deploy");
    expect(triggerLabel("rollback")).toBe("rollback");
    expect(triggerLabel("repair")).toBe("repair by berth");
    expect(triggerLabel("auto_rollback")).toBe("automatic rollback");
    expect(triggerLabel("cron")).toBe("cron");
  });
});

describe("runtimeDisplay", () => {
  it("shows what berth found running, degraded in the danger tone", () => {
    expect(runtimeDisplay("running")).toEqual({ label: "Running", tone: "success" });
    expect(runtimeDisplay("degraded")).toEqual({ label: "Degraded", tone: "danger" });
    expect(runtimeDisplay("stopped")).toEqual({ label: "Stopped", tone: "muted" });
    expect(runtimeDisplay("half_asleep")).toEqual({ label: "Half asleep", tone: "neutral" });
  });
});

describe("instanceDisplay", () => {
  it("tells a stopped instance, a failing one and a healthy one apart", () => {
    expect(instanceDisplay({ running: false, healthy: null })).toEqual({ label: "Not running", tone: "danger" });
    expect(instanceDisplay({ running: true, healthy: false }).label).toBe("Failing its health check");
    expect(instanceDisplay({ running: true, healthy: true }).tone).toBe("success");
    expect(instanceDisplay({ running: true, healthy: null }).label).toBe("Running");
  });
});
