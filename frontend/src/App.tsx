import { BrowserRouter, Link, Route, Routes } from "react-router";
import { SessionProvider } from "./api/session";
import { GuestOnly, Layout, RequireSession } from "./components/Layout";
import { Account } from "./pages/Account";
import { AppPage } from "./pages/AppPage";
import { Audit } from "./pages/Audit";
import { ConfirmEmail, ConfirmRegistration } from "./pages/Confirm";
import { CreateApp } from "./pages/CreateApp";
import { Apps } from "./pages/Apps";
import { ForgotPassword } from "./pages/ForgotPassword";
import { Register } from "./pages/Register";
import { ResetPassword } from "./pages/ResetPassword";
import { SignIn } from "./pages/SignIn";

export function App() {
  return (
    <SessionProvider>
      <BrowserRouter>
        <Routes>
          <Route element={<Layout />}>
            <Route element={<GuestOnly />}>
              <Route path="sign-in" element={<SignIn />} />
              <Route path="register" element={<Register />} />
            </Route>
            <Route path="forgot-password" element={<ForgotPassword />} />
            <Route path="reset-password" element={<ResetPassword />} />
            <Route path="confirm-registration" element={<ConfirmRegistration />} />
            <Route path="confirm-email" element={<ConfirmEmail />} />
            <Route element={<RequireSession />}>
              <Route index element={<Apps />} />
              <Route path="apps/new" element={<CreateApp />} />
              <Route path="apps/:id" element={<AppPage />} />
              <Route path="account" element={<Account />} />
              <Route path="audit" element={<Audit />} />
            </Route>
            <Route path="*" element={<NotFound />} />
          </Route>
        </Routes>
      </BrowserRouter>
    </SessionProvider>
  );
}

function NotFound() {
  return (
    <section className="empty">
      <h1>Page not found</h1>
      <p>
        <Link to="/">Go to your apps</Link>
      </p>
    </section>
  );
}
