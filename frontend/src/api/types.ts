// Shapes from the backend's OpenAPI document (/api/v1/openapi.json).

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
  refresh_token?: string | null;
}

export interface User {
  id: string;
  username: string;
  email: string;
  created_at: string;
}

export interface Profile extends User {
  display_name?: string | null;
  github_login?: string | null;
  has_password: boolean;
  /** A new address waiting for the link mailed to it. */
  pending_email?: string | null;
}

export interface LastDeploy {
  trigger: string;
  created_at: string;
  commit?: string | null;
  pushed_by?: string | null;
}

/** Memory and CPU of each instance of an app. */
export interface Resources {
  memory_mb: number;
  cpu_millis: number;
}

export interface App {
  id: string;
  name: string;
  tenant: string;
  repo_url: string;
  branch: string;
  subdirectory?: string | null;
  port: number;
  /** Where each instance answers 2xx while healthy; null: the port accepting connections. */
  health_check_path?: string | null;
  replicas: number;
  /** Each instance's; the operator's defaults filled in. */
  resources: Resources;
  env_names: string[];
  env_version: number;
  created_at: string;
  updated_at: string;
  current_release_id?: string | null;
  latest_deployment_id?: string | null;
  last_deploy?: LastDeploy | null;
  state?: string | null;
  url?: string | null;
  /** What berth last found running; null until it looked. */
  runtime?: AppRuntime | null;
}

export interface AppRuntime {
  /** running, degraded (should run but does not, and berth could not repair it) or stopped. */
  status: string;
  reason?: string | null;
  checked_at: string;
  /** The live deployment's instances as that check found them (absent from older backends). */
  instances?: RuntimeInstance[];
}

/** One instance (container or pod) of the live deployment. */
export interface RuntimeInstance {
  name: string;
  running: boolean;
  /** Passed its health check; null when not running. */
  healthy: boolean | null;
  /** What a failing check got, e.g. "answered 500". */
  said: string | null;
}

export interface StateEntry {
  state: string;
  at: string;
  [key: string]: unknown;
}

export interface Deployment {
  id: string;
  app_id: string;
  state: string;
  states: StateEntry[];
  trigger: string;
  release_id: string;
  /** When retention removed the release's image: it cannot be rolled back to. */
  release_pruned_at?: string | null;
  created_at: string;
  updated_at: string;
  commit?: string | null;
  commit_message?: string | null;
  created_by?: string | null;
  endpoint?: string | null;
  image?: string | null;
  pushed_by?: string | null;
  reason?: string | null;
  ref?: string | null;
  /** While queued: its place in line and when it should start. */
  queue?: QueuePlace | null;
  /** While in progress, when its work hit a passing failure and waits for another attempt. */
  waiting?: Waiting | null;
}

export interface Waiting {
  reason: string;
  next_attempt_at: string;
}

export interface QueuePlace {
  position: number;
  estimated_start_secs?: number | null;
}

export interface Repo {
  full_name: string;
  private: boolean;
  clone_url: string;
  default_branch?: string | null;
  pushed_at?: string | null;
}

export interface Branch {
  name: string;
  sha: string;
}

export interface Session {
  id: string;
  started_at: string;
  refreshed_at: string;
  expires_at: string;
  /** The session this page is signed in with. */
  current: boolean;
}

export interface AuditEvent {
  id: string;
  actor: string;
  action: string;
  target_type: string;
  target_id?: string | null;
  details: Record<string, unknown>;
  created_at: string;
  source_ip?: string | null;
}

export interface Webhook {
  configured: boolean;
  path: string;
  url?: string | null;
  created_at?: string | null;
  rotated_at?: string | null;
  last_delivery?: {
    delivery_id: string;
    event: string;
    received_at: string;
    outcome?: string | null;
    deployment_id?: string | null;
  } | null;
}

/** A DNS record the domain's owner creates at their DNS provider. */
export interface DnsRecord {
  type: "TXT" | "CNAME" | "A" | "AAAA";
  name: string;
  value: string;
  purpose: string;
}

export type CertificateState = "not_applicable" | "pending" | "issued" | "failed";

/** A custom domain of an app (`/apps/{id}/domains`). */
export interface Domain {
  hostname: string;
  environment: string;
  status: "pending_verification" | "verified";
  url: string;
  dns_records: DnsRecord[];
  verification: { checked_at: string | null; error: string | null };
  certificate: {
    state: CertificateState;
    issuer: string | null;
    expires_at: string | null;
    checked_at: string | null;
    error: string | null;
  };
  verified_at: string | null;
  created_at: string;
}

export interface WebhookSecret {
  path: string;
  url?: string | null;
  secret: string;
  content_type: string;
  events: string[];
  registered: boolean;
  github_hook_id?: number | null;
  created_at: string;
  rotated_at: string;
}

/** One quota of the account and how much of it is used. */
export interface QuotaUse {
  used: number;
  limit: number;
}

/** GET /me/quota: the account's quotas, set by the operator. */
export interface Quota {
  apps: QuotaUse;
  queued_deployments: QuotaUse;
  streams: QuotaUse;
  log_reads: QuotaUse;
  /** Memory of every app times its instances, in MB. */
  memory_mb: QuotaUse;
  /** CPU of every app times its instances, in millicores. */
  cpu_millis: QuotaUse;
  app_default: Resources;
  app_max: Resources;
}
