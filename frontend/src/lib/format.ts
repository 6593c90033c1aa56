// Small display helpers.

/** "just now", "5 minutes ago", "3 hours ago", "2 days ago", then the date. */
export function timeAgo(iso: string, now: number = Date.now()): string {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return "";
  const s = Math.round((now - at) / 1000);
  if (s < 45) return "just now";
  const m = Math.round(s / 60);
  if (m < 60) return m === 1 ? "1 minute ago" : `${m} minutes ago`;
  const h = Math.round(m / 60);
  if (h < 24) return h === 1 ? "1 hour ago" : `${h} hours ago`;
  const d = Math.round(h / 24);
  if (d < 30) return d === 1 ? "yesterday" : `${d} days ago`;
  return new Date(at).toISOString().slice(0, 10);
}

export function shortSha(sha: string | null | undefined): string {
  return sha ? sha.slice(0, 7) : "";
}

/** "1 min 5 s", "42 s"; empty when either end is missing. */
export function duration(fromIso: string, toIso: string | null | undefined): string {
  if (!toIso) return "";
  const ms = Date.parse(toIso) - Date.parse(fromIso);
  if (Number.isNaN(ms) || ms < 0) return "";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  const rest = s % 60;
  return rest ? `${m} min ${rest} s` : `${m} min`;
}

/** "next in line", "3rd in line · starts in about 2 min". */
export function queueLabel(position: number, estimatedStartSecs?: number | null): string {
  const place = position <= 1 ? "next in line" : `${ordinal(position)} in line`;
  if (estimatedStartSecs == null) return place;
  const minutes = Math.round(estimatedStartSecs / 60);
  const when = minutes < 1 ? "in under a minute" : `in about ${minutes} min`;
  return `${place} · starts ${when}`;
}

/** "the registry is unavailable, next attempt in 40 s" for work waiting to be tried again. */
export function waitingLabel(reason: string, nextAttemptAt: string, now: number = Date.now()): string {
  const secs = Math.round((Date.parse(nextAttemptAt) - now) / 1000);
  if (secs <= 0) return `${reason}, trying again now`;
  const when = secs < 90 ? `${secs} s` : `${Math.round(secs / 60)} min`;
  return `${reason}, next attempt in ${when}`;
}

function ordinal(n: number): string {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  switch (n % 10) {
    case 1:
      return `${n}st`;
    case 2:
      return `${n}nd`;
    case 3:
      return `${n}rd`;
    default:
      return `${n}th`;
  }
}
