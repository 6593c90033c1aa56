// What the harness (tests/tests/web_ui.rs) tells the journeys. A missing
// setting fails the run: a journey never skips itself.

export function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the journeys through tests/tests/web_ui.rs`);
  return value;
}

/** How long a build and deploy may take on a slow 2-core machine (as the Rust e2e). */
export const SETTLE_MS = 300_000;

/** The deployment states the pipeline is still moving. */
export const IN_PROGRESS = /^(queued|cloning|building|pushing|deploying)$/;

/** The states a deployment ends in. */
export const SETTLED = /^(live|failed|timed_out|cancelled)$/;
