import { useCallback, useId, useState, type InputHTMLAttributes, type ReactNode } from "react";
import { ApiProblem, plainMessage, withSubject } from "../api/problem";
import { hasErrors, visibleErrors, type Errors } from "../lib/validation";

type FieldProps = {
  label: string;
  error?: string | null;
  hint?: ReactNode;
} & InputHTMLAttributes<HTMLInputElement>;

/**
 * A labelled input with its error right under it. The error is tied to the
 * input with aria-describedby and marks it aria-invalid, so screen readers
 * read it with the field.
 */
export function Field({ label, error, hint, id, ...input }: FieldProps) {
  const auto = useId();
  const inputId = id ?? auto;
  const hintId = hint ? `${inputId}-hint` : undefined;
  const errorId = error ? `${inputId}-error` : undefined;
  const describedBy = [hintId, errorId].filter(Boolean).join(" ") || undefined;
  return (
    <div className={error ? "field field-invalid" : "field"}>
      <label htmlFor={inputId}>{label}</label>
      <input id={inputId} aria-invalid={error ? true : undefined} aria-describedby={describedBy} {...input} />
      {hint && (
        <p className="field-hint" id={hintId}>
          {hint}
        </p>
      )}
      {error && (
        <p className="field-error" id={errorId}>
          {withSubject(label, error)}
        </p>
      )}
    </div>
  );
}

/** The general problem, above the form, in plain words. */
export function ProblemBanner({ problem, shownFields = [] }: { problem: unknown; shownFields?: readonly string[] }) {
  if (!problem) return null;
  const message = problem instanceof ApiProblem ? plainMessage(problem, shownFields) : "Something went wrong. Try again.";
  return (
    <div className="banner banner-error" role="alert">
      {message}
    </div>
  );
}

export function Notice({ children }: { children: ReactNode }) {
  return (
    <div className="banner banner-info" role="status">
      {children}
    </div>
  );
}

/**
 * A form's error state: `submit(checks)` records the browser's checks and
 * says whether to send; `fail(err)` records the API's answer; `edit(field)`
 * hides a field's error while it is being corrected.
 */
export function useFormErrors<F extends string>(aliases: Readonly<Record<string, F>> = {}) {
  const [checks, setChecks] = useState<Errors<F>>({});
  const [problem, setProblem] = useState<unknown>(null);
  const [edited, setEdited] = useState<ReadonlySet<string>>(new Set());
  const submit = useCallback((found: Errors<F>) => {
    setChecks(found);
    setProblem(null);
    setEdited(new Set());
    return !hasErrors(found);
  }, []);
  const fail = useCallback((err: unknown) => {
    setProblem(err);
    setEdited(new Set());
  }, []);
  const edit = useCallback((field: F) => setEdited((s) => (s.has(field) ? s : new Set(s).add(field))), []);
  const apiErrors = problem instanceof ApiProblem ? problem.fieldErrors() : {};
  const errors = visibleErrors(checks, apiErrors, edited, aliases) as Partial<Record<F, string>>;
  return { errors, problem, submit, fail, edit, clearProblem: () => setProblem(null) };
}
