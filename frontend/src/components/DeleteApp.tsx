import { useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { useSession } from "../api/session";
import { Field, ProblemBanner, useFormErrors } from "./forms";

/** Deleting an app takes its name typed again. */
export function DeleteApp({ appId, appName }: { appId: string; appName: string }) {
  const { client } = useSession();
  const navigate = useNavigate();
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const { errors, problem, submit, fail, edit } = useFormErrors<"confirm">();

  const onSubmit = async (e: FormEvent) => {
    e.preventDefault();
    if (!submit(typed === appName ? {} : { confirm: "this does not match the app's name" })) return;
    setBusy(true);
    try {
      await client.deleteApp(appId);
      navigate("/", { replace: true });
    } catch (err) {
      fail(err);
      setBusy(false);
    }
  };

  return (
    <form className="danger" onSubmit={onSubmit} noValidate>
      <p>
        Deleting <strong>{appName}</strong> cancels its deployments and removes everything it runs. It cannot be
        undone.
      </p>
      <ProblemBanner problem={problem} shownFields={["confirm"]} />
      <Field
        label="Type the app's name to confirm"
        name="confirm"
        autoComplete="off"
        autoCapitalize="none"
        spellCheck={false}
        value={typed}
        onChange={(e) => {
          setTyped(e.target.value);
          edit("confirm");
        }}
        error={errors.confirm}
      />
      <button type="submit" className="danger-button" disabled={busy || typed !== appName}>
        {busy ? "Deleting…" : "Delete this app"}
      </button>
    </form>
  );
}
