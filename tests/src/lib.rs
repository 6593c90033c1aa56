//! End-to-end harness: starts berth's four real binaries against the real
//! local stack, each [`Platform`] with its own database, RabbitMQ vhost,
//! work and state folders, so suites can run side by side.

pub mod api;
pub mod chaos;
pub mod engine;
pub mod fake_github;
pub mod flow;
pub mod platform;
pub mod playwright;
pub mod repo;

pub use api::Client;
pub use platform::Platform;
pub use repo::AppRepo;
