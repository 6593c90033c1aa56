import { useEffect, useRef, useState } from "react";
import { Link, Navigate, NavLink, Outlet, useLocation, useNavigate } from "react-router";
import { useSession } from "../api/session";

export function Layout() {
  const { status, signOut } = useSession();
  const navigate = useNavigate();
  const [signingOut, setSigningOut] = useState(false);
  const location = useLocation();
  const main = useRef<HTMLElement>(null);
  const firstPage = useRef(true);
  // After moving to another page, start reading (and tabbing) from its content,
  // as a full page load would.
  useEffect(() => {
    if (firstPage.current) {
      firstPage.current = false;
      return;
    }
    main.current?.focus();
  }, [location.pathname]);
  const onSignOut = async () => {
    setSigningOut(true);
    try {
      await signOut();
    } catch {
      // The token is forgotten either way; the cookie expires on its own.
    } finally {
      setSigningOut(false);
      navigate("/sign-in");
    }
  };
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          berth
        </Link>
        {status === "signed-in" && (
          <nav aria-label="Main">
            <NavLink to="/" end>
              Apps
            </NavLink>
            <NavLink to="/account">Account</NavLink>
            <NavLink to="/audit">Audit</NavLink>
            <button type="button" className="link-button" onClick={onSignOut} disabled={signingOut}>
              Sign out
            </button>
          </nav>
        )}
      </header>
      <main id="main" className="content" ref={main} tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" /> {what}
    </p>
  );
}

/** Pages behind sign-in: wait for the session to be restored, else go to sign-in. */
export function RequireSession() {
  const { status } = useSession();
  const location = useLocation();
  if (status === "restoring") return <Loading what="Restoring your session…" />;
  if (status === "signed-out") {
    const next = location.pathname + location.search;
    return <Navigate to={next === "/" ? "/sign-in" : `/sign-in?next=${encodeURIComponent(next)}`} replace />;
  }
  return <Outlet />;
}

/** Sign-in and register: already signed in → where they were going. */
export function GuestOnly() {
  const { status } = useSession();
  const location = useLocation();
  if (status === "restoring") return <Loading what="Restoring your session…" />;
  if (status === "signed-in") return <Navigate to={safeNext(new URLSearchParams(location.search).get("next"))} replace />;
  return <Outlet />;
}

/** Only same-site paths, so `?next=` cannot send someone elsewhere. */
export function safeNext(next: string | null): string {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}
