// Screenshots of the main pages at a desktop and a phone width, for people
// to look at (frontend/e2e/screenshots/, git-ignored).

import type { Page } from "@playwright/test";
import { join } from "node:path";

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 360, height: 740 };

const dir = process.env.BERTH_E2E_SCREENSHOTS ?? join(import.meta.dirname, "screenshots");

/** Saves `<name>-desktop.png` and `<name>-phone.png` of the whole page, then returns to the desktop size. */
export async function snap(page: Page, name: string): Promise<void> {
  for (const [size, viewport] of [["desktop", DESKTOP], ["phone", PHONE]] as const) {
    await page.setViewportSize(viewport);
    // Let the layout settle at the new width (and the log view re-measure).
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
    await page.screenshot({ path: join(dir, `${name}-${size}.png`), fullPage: true, animations: "disabled" });
  }
  await page.setViewportSize(DESKTOP);
}
