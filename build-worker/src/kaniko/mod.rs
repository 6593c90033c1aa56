//! The Kubernetes driver's image builder: one Kaniko Pod per build in the
//! tenant's build namespace `berth-<tenant>-build`.

mod config;
mod output;
mod pod;
mod status;

#[cfg(test)]
mod fixtures;

pub use config::{KanikoConfig, KanikoSettings};
pub use output::KanikoOutput;
pub use pod::{
    build_pod, cache_repo, kaniko_args, pod_name, registry_secret, CONTAINER, ROLE_LABEL,
};
pub use status::{outcome, pod_state, Finish, PodState};
