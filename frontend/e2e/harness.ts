// Asks the harness (tests/tests/web_ui.rs) to act on the platform while a
// journey runs: the spec writes `<BERTH_E2E_CONTROL_DIR>/<what>.request`,
// the harness does it and renames the file to `<what>.done`.

import { access, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { required } from "./env";

export type HarnessAction = "stop-backend" | "start-backend";

export async function askHarness(what: HarnessAction, withinMs = 90_000): Promise<void> {
  const dir = required("BERTH_E2E_CONTROL_DIR");
  await writeFile(join(dir, `${what}.request`), "");
  const done = join(dir, `${what}.done`);
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      await access(done);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`the harness did not ${what} within ${withinMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
