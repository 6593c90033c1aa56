//! berth's build worker: consumes `berth.builds`, clones the exact commit,
//! uses the repository's Dockerfile or generates one for the detected stack,
//! builds and pushes the image, streams every build line to the app's Kafka
//! topic, reports each phase on `berth.inform` and hands the release (image
//! by digest) to the deploy-worker on `berth.deploys`.
//!
//! The I/O sits behind small traits so the pipeline ([`BuildService`]) is the
//! same whatever does the work:
//!
//! | seam | trait | implementation here |
//! |---|---|---|
//! | source | [`SourceFetcher`] | [`GitFetcher`] (git2) |
//! | image builds and pushes | [`ImageBuilder`] | [`SandboxBuilder`] (rootless podman in a sandbox per build; single host), [`DockerBuilder`] (bollard; trusted code only), [`KanikoBuilder`] (a Kaniko Pod per build, kube) |
//! | digest lookups | [`Registry`] | [`HttpRegistry`] (Distribution v2 API) |
//! | build log | `berth_common::LogSink` | `LogProducer` (Kafka) |
//! | messages | `berth_common::MessagePublisher` | `Broker` (RabbitMQ) |

pub mod buildlog;
pub mod config;
pub mod context;
pub mod detect;
#[cfg(test)]
mod detect_props;
pub mod docker;
pub mod dockerfile;
pub mod dockerignore;
pub mod error;
pub mod git;
pub mod kaniko;
pub mod prepare;
pub mod registry;
pub mod repofile;
pub mod sandbox;
pub mod service;
pub mod slots;
pub mod source_policy;
pub mod work_dirs;

pub use buildlog::{BuildLog, LogSettings};
pub use config::{BuildConfig, BuilderKind, Config, Settings};
pub use detect::StackImages;
pub use docker::{BuildJob, Built, DockerBuilder, ImageBuilder, RegistryAuth};
pub use error::BuildError;
pub use git::{GitFetcher, RepoSpec, SourceFetcher};
pub use kaniko::{KanikoBuilder, KanikoConfig, KanikoSettings};
pub use registry::{HttpRegistry, ImageRepo, Registry};
pub use sandbox::{SandboxBuilder, SandboxConfig};
pub use service::BuildService;
pub use source_policy::SourcePolicy;
