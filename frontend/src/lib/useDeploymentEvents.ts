import { useEffect, useRef, useState } from "react";
import type { DeploymentEvent } from "../api/events";
import { useSession } from "../api/session";

/**
 * Calls `onChange(event)` for each live deployment change, and
 * `onChange(null)` when some may have been missed (re-read everything).
 * Answers whether the stream is connected, so a page can poll when not.
 */
export function useDeploymentEvents(onChange: (event: DeploymentEvent | null) => void): boolean {
  const { events } = useSession();
  const [connected, setConnected] = useState(events.isConnected);
  const handler = useRef(onChange);
  handler.current = onChange;
  useEffect(() => {
    const unsubscribe = events.subscribe({
      deployment: (e) => handler.current(e),
      resync: () => handler.current(null),
      connection: setConnected,
    });
    return () => {
      unsubscribe();
    };
  }, [events]);
  return connected;
}
