import { useId, type InputHTMLAttributes, type ReactNode } from "react";
import { ApiProblem, plainMessage } from "../api/problem";

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
          {label} {error}
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

/** Field errors to show: the browser's own checks first, then the API's. */
export function mergeErrors(client: Record<string, string | undefined>, problem: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (problem instanceof ApiProblem) Object.assign(out, problem.fieldErrors());
  for (const [k, v] of Object.entries(client)) if (v) out[k] = v;
  return out;
}
