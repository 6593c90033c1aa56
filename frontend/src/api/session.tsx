// The session store: whether someone is signed in, as a React context.
// On start it asks for a new access token with the refresh cookie, so a
// reload (or the return from GitHub sign-in) restores the session without
// the token ever being stored by the page.

import { createContext, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { api, type ApiClient } from "./client";
import { DeploymentEvents } from "./events";

export type SessionStatus = "restoring" | "signed-in" | "signed-out";

export interface Session {
  status: SessionStatus;
  client: ApiClient;
  /** Live deployment states, streaming while signed in. */
  events: DeploymentEvents;
  signIn(login: string, password: string): Promise<void>;
  signOut(): Promise<void>;
}

const SessionContext = createContext<Session | null>(null);

export function SessionProvider({ client = api, children }: { client?: ApiClient; children: ReactNode }) {
  const [status, setStatus] = useState<SessionStatus>(client.signedIn ? "signed-in" : "restoring");

  useEffect(() => {
    const unsubscribe = client.subscribe((token) => setStatus(token ? "signed-in" : "signed-out"));
    let cancelled = false;
    if (!client.signedIn) {
      // Single-flight in the client, so StrictMode's double effect sends one request.
      client.refresh().then((ok) => {
        if (!cancelled) setStatus(ok || client.signedIn ? "signed-in" : "signed-out");
      });
    }
    return () => {
      cancelled = true;
      unsubscribe();
    };
  }, [client]);

  const events = useMemo(() => new DeploymentEvents({ ticket: () => client.ticket() }), [client]);
  useEffect(() => {
    if (status !== "signed-in") return;
    events.start();
    return () => events.stop();
  }, [status, events]);

  const session = useMemo<Session>(
    () => ({
      status,
      client,
      events,
      signIn: (login, password) => client.login(login, password),
      signOut: () => client.logout(),
    }),
    [status, client, events],
  );

  return <SessionContext.Provider value={session}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}
