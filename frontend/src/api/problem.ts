// Errors from the API arrive as RFC 9457 problem documents
// (application/problem+json): {type, title, status, detail, errors?}.
// ApiProblem carries one to the UI, which shows `detail` in plain words
// above a form and each field error next to its field.

export interface FieldError {
  field: string;
  message: string;
}

export interface ProblemDocument {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  errors?: FieldError[] | null;
  error_id?: string | null;
}

/** The problem type for failures that never reached the API (offline, DNS, CORS). */
export const NETWORK_PROBLEM = "about:network";

export class ApiProblem extends Error {
  readonly type: string;
  readonly title: string;
  readonly status: number;
  readonly detail: string;
  readonly errors: FieldError[];
  readonly errorId: string | null;
  /** Seconds from a 429's Retry-After header, when it had one. */
  readonly retryAfter: number | null;

  constructor(doc: ProblemDocument & { status: number }, retryAfter: number | null = null) {
    super(doc.detail || doc.title || `HTTP ${doc.status}`);
    this.name = "ApiProblem";
    this.type = doc.type || "about:blank";
    this.title = doc.title || "";
    this.status = doc.status;
    this.detail = doc.detail || "";
    this.errors = Array.isArray(doc.errors) ? doc.errors.filter(isFieldError) : [];
    this.errorId = doc.error_id ?? null;
    this.retryAfter = retryAfter;
  }

  /** The problem's slug: `https://berth.dev/problems/validation` → `validation`. */
  get slug(): string {
    const i = this.type.lastIndexOf("/");
    return i >= 0 ? this.type.slice(i + 1) : this.type;
  }

  /**
   * Field errors keyed by field name; several messages for one field are
   * joined. Nested names (`env.FOO`) are kept as they are.
   */
  fieldErrors(): Record<string, string> {
    return fieldErrorMap(this.errors);
  }
}

function isFieldError(e: unknown): e is FieldError {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as FieldError).field === "string" &&
    typeof (e as FieldError).message === "string"
  );
}

export function fieldErrorMap(errors: FieldError[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const { field, message } of errors) {
    out[field] = out[field] ? `${out[field]}; ${message}` : message;
  }
  return out;
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.trim() === "") return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return null;
  return Math.max(0, Math.ceil((at - now) / 1000));
}

/**
 * Turns any non-2xx response into an ApiProblem: a problem+json body is
 * used as it is; anything else (a proxy's HTML page, an empty body) gets a
 * problem made from the status.
 */
export async function problemFromResponse(res: Response): Promise<ApiProblem> {
  const retryAfter = parseRetryAfter(res.headers.get("retry-after"));
  const contentType = res.headers.get("content-type") ?? "";
  let doc: ProblemDocument | null = null;
  if (contentType.includes("json")) {
    try {
      const body: unknown = await res.json();
      if (typeof body === "object" && body !== null) doc = body as ProblemDocument;
    } catch {
      doc = null;
    }
  }
  return new ApiProblem(
    {
      type: doc?.type,
      title: doc?.title || res.statusText,
      status: typeof doc?.status === "number" ? doc.status : res.status,
      detail: doc?.detail,
      errors: doc?.errors,
      error_id: doc?.error_id,
    },
    retryAfter,
  );
}

export function networkProblem(cause: unknown): ApiProblem {
  const problem = new ApiProblem({
    type: NETWORK_PROBLEM,
    title: "Network error",
    status: 0,
    detail: cause instanceof Error ? cause.message : String(cause),
  });
  return problem;
}

function capitalize(s: string): string {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

function seconds(n: number): string {
  if (n < 60) return n === 1 ? "1 second" : `${n} seconds`;
  const m = Math.ceil(n / 60);
  return m === 1 ? "1 minute" : `${m} minutes`;
}

/**
 * What to tell a person about a problem, in plain words. Validation
 * problems whose every error is shown next to a field say so briefly.
 */
export function plainMessage(problem: ApiProblem, shownFields: readonly string[] = []): string {
  if (problem.type === NETWORK_PROBLEM) {
    return "Could not reach berth. Check your connection and try again.";
  }
  // A quota (429 while something is held, 422 for counts) says which, and its value.
  if (problem.slug === "quota-exceeded" && problem.detail) {
    return endSentence(capitalize(problem.detail));
  }
  if (problem.status === 429) {
    return problem.retryAfter !== null
      ? `Too many attempts. Try again in ${seconds(problem.retryAfter)}.`
      : "Too many attempts. Wait a moment and try again.";
  }
  if (problem.status >= 500) {
    const ref = problem.errorId ? ` (reference ${problem.errorId})` : "";
    return `Something went wrong on the server${ref}. Try again in a moment.`;
  }
  if (problem.errors.length > 0) {
    const unshown = problem.errors.filter((e) => !shownFields.includes(e.field));
    if (unshown.length === 0) {
      return problem.errors.length === 1
        ? "Please correct the field marked below."
        : "Please correct the fields marked below.";
    }
    return unshown.map((e) => endSentence(withSubject(humanField(e.field), e.message))).join(" ");
  }
  return endSentence(capitalize(problem.detail || problem.title || `Request failed (HTTP ${problem.status})`));
}

function endSentence(s: string): string {
  return s.replace(/([^.!?])$/, "$1.");
}

// Field messages are mostly predicates ("must be an email address") that
// read after the field's name; some are whole sentences ("this reset link
// is invalid…") that read on their own.
const PREDICATE = /^(must|is|are|may|does|do|should|cannot|can't|has|have|needs?|was|already|exceeds|contains)\b/;

/** `("Email", "must be an email address")` → "Email must be an email address". */
export function withSubject(subject: string, message: string): string {
  return PREDICATE.test(message) ? `${capitalize(subject)} ${message}` : capitalize(message);
}

/** `new_password` → `new password`; `env.FOO` stays as written. */
export function humanField(field: string): string {
  return field.includes(".") ? field : field.replace(/_/g, " ");
}
