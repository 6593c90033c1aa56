import { useEffect } from "react";

/** Sets the tab's title, "<page> · berth". */
export function useTitle(page: string | null | undefined): void {
  useEffect(() => {
    document.title = page ? `${page} · berth` : "berth";
  }, [page]);
}
