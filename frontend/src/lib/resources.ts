// The resources form of an app's page: each instance's memory and CPU,
// checked against the per-app maximum the server reports, and what the
// account's memory and CPU quotas would say about a change.
import type { Quota, Resources } from "../api/types";

/** The server's smallest values (backend quota::MIN_MEMORY_MB, MIN_CPU_MILLIS). */
export const MIN_MEMORY_MB = 64;
export const MIN_CPU_MILLIS = 50;

export interface ResourcesValues {
  memoryMb: string;
  cpuMillis: string;
}

export type ResourcesBody = Partial<{ memory_mb: number; cpu_millis: number }>;

type Errors = Partial<Record<"resources.memory_mb" | "resources.cpu_millis", string>>;

function whole(value: string, min: number, max: number | undefined, unit: string): number | string {
  const t = value.trim();
  if (!/^\d+$/.test(t)) return "must be a whole number";
  const n = Number(t);
  if (n < min || (max !== undefined && n > max)) {
    return max === undefined ? `must be at least ${min} ${unit}` : `must be between ${min} and ${max} ${unit}`;
  }
  return n;
}

/** The form's checks, and a body with only what changed (null when nothing did). */
export function buildResources(
  v: ResourcesValues,
  current: Resources,
  max?: Resources,
): { errors: Errors; body: ResourcesBody | null } {
  const errors: Errors = {};
  const memory = whole(v.memoryMb, MIN_MEMORY_MB, max?.memory_mb, "MB");
  const cpu = whole(v.cpuMillis, MIN_CPU_MILLIS, max?.cpu_millis, "millicores");
  if (typeof memory === "string") errors["resources.memory_mb"] = memory;
  if (typeof cpu === "string") errors["resources.cpu_millis"] = cpu;
  if (typeof memory === "string" || typeof cpu === "string") return { errors, body: null };
  const body: ResourcesBody = {};
  if (memory !== current.memory_mb) body.memory_mb = memory;
  if (cpu !== current.cpu_millis) body.cpu_millis = cpu;
  return { errors, body: Object.keys(body).length ? body : null };
}

/** "1.5 cores", "250 millicores". */
export function formatCpu(millis: number): string {
  if (millis % 1000 === 0) return `${millis / 1000} ${millis === 1000 ? "core" : "cores"}`;
  if (millis > 1000) return `${(millis / 1000).toFixed(2).replace(/0+$/, "")} cores`;
  return `${millis} millicores`;
}

/** "512 MB", "2 GB". */
export function formatMemory(mb: number): string {
  return mb >= 1024 && mb % 1024 === 0 ? `${mb / 1024} GB` : `${mb} MB`;
}

/** One line per quota the resources count toward: "Memory: 1.5 GB of 10 GB". */
export function quotaLines(quota: Quota): { label: string; used: string; limit: string; full: boolean }[] {
  return [
    { label: "Memory", used: formatMemory(quota.memory_mb.used), limit: formatMemory(quota.memory_mb.limit), full: quota.memory_mb.used >= quota.memory_mb.limit },
    { label: "CPU", used: formatCpu(quota.cpu_millis.used), limit: formatCpu(quota.cpu_millis.limit), full: quota.cpu_millis.used >= quota.cpu_millis.limit },
    { label: "Apps", used: String(quota.apps.used), limit: String(quota.apps.limit), full: quota.apps.used >= quota.apps.limit },
    {
      label: "Deployments waiting",
      used: String(quota.queued_deployments.used),
      limit: String(quota.queued_deployments.limit),
      full: quota.queued_deployments.used >= quota.queued_deployments.limit,
    },
  ];
}
