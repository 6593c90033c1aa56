import { useEffect } from "react";

/** Calls `fn` every `ms` while `active` and the page is visible. */
export function usePoll(fn: () => void, ms: number, active: boolean): void {
  useEffect(() => {
    if (!active) return;
    const id = window.setInterval(() => {
      if (document.visibilityState === "visible") fn();
    }, ms);
    return () => window.clearInterval(id);
  }, [fn, ms, active]);
}
