// How a deployment state (proto's state machine) is shown: its words, its
// colour (a tone the CSS maps to a colour; never the only signal, the label
// is always written), and whether it can still change.

export type Tone = "neutral" | "progress" | "success" | "danger" | "warning" | "muted";

export interface StateDisplay {
  label: string;
  tone: Tone;
  /** False while the pipeline is still moving it. */
  final: boolean;
  /** Step n of the way to live (1..6), for in-progress states. */
  step?: number;
}

const STATES: Record<string, StateDisplay> = {
  queued: { label: "Queued", tone: "neutral", final: false, step: 1 },
  cloning: { label: "Cloning", tone: "progress", final: false, step: 2 },
  building: { label: "Building", tone: "progress", final: false, step: 3 },
  pushing: { label: "Pushing image", tone: "progress", final: false, step: 4 },
  deploying: { label: "Deploying", tone: "progress", final: false, step: 5 },
  live: { label: "Live", tone: "success", final: true, step: 6 },
  failed: { label: "Failed", tone: "danger", final: true },
  timed_out: { label: "Timed out", tone: "danger", final: true },
  cancelled: { label: "Cancelled", tone: "muted", final: true },
  superseded: { label: "Superseded", tone: "muted", final: true },
  rolled_back: { label: "Rolled back", tone: "warning", final: true },
};

export const PIPELINE_STEPS = 6;

const RUNTIME: Record<string, { label: string; tone: Tone }> = {
  running: { label: "Running", tone: "success" },
  degraded: { label: "Degraded", tone: "danger" },
  stopped: { label: "Stopped", tone: "muted" },
};

/** How an app's runtime status (what berth found running) is shown. */
export function runtimeDisplay(status: string): { label: string; tone: Tone } {
  const words = status.replace(/_/g, " ");
  return RUNTIME[status] ?? { label: words[0].toUpperCase() + words.slice(1), tone: "neutral" };
}

/** One instance of the live deployment: stopped, healthy or failing its check. */
export function instanceDisplay(instance: { running: boolean; healthy: boolean | null }): {
  label: string;
  tone: Tone;
} {
  if (!instance.running) return { label: "Not running", tone: "danger" };
  if (instance.healthy === false) return { label: "Failing its health check", tone: "warning" };
  if (instance.healthy === true) return { label: "Healthy", tone: "success" };
  return { label: "Running", tone: "neutral" };
}

export function stateDisplay(state: string | null | undefined): StateDisplay {
  if (state === null || state === undefined || state === "") {
    return { label: "Not deployed", tone: "muted", final: true };
  }
  const known = STATES[state];
  if (known) return known;
  // A state a newer backend added: show it readably, treat it as settled.
  const words = state.replace(/_/g, " ");
  return { label: words[0].toUpperCase() + words.slice(1), tone: "neutral", final: true };
}

export function isInProgress(state: string | null | undefined): boolean {
  return !stateDisplay(state).final;
}

/** Who or what started a deployment, in words. */
export function triggerLabel(trigger: string, pushedBy?: string | null): string {
  switch (trigger) {
    case "push":
      return pushedBy ? `push by ${pushedBy}` : "push";
    case "rollback":
      return "rollback";
    case "user":
      return "manual deploy";
    case "repair":
      return "repair by berth";
    case "auto_rollback":
      return "automatic rollback";
    default:
      return trigger;
  }
}
