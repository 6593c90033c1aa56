//! Labels berth puts on every workload it runs, on both drivers. The
//! log-streamer and the deploy-worker find berth's workloads by them.

pub const APP: &str = "berth.dev/app";
pub const APP_NAME: &str = "berth.dev/app-name";
pub const TENANT: &str = "berth.dev/tenant";
pub const RELEASE: &str = "berth.dev/release";
pub const DEPLOYMENT: &str = "berth.dev/deployment";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "berth";
/// Which berth installation runs the workload. Several installations can
/// share one engine (a developer's `make up` beside test runs); each one's
/// workers touch only their own workloads.
pub const INSTALLATION: &str = "berth.dev/installation";
