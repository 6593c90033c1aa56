//! The loops `server::serve` starts beside the HTTP API: nothing here
//! answers a request.
//!
//! * `relay`: publishes the outbox to RabbitMQ;
//! * `inform`: applies the workers' progress reports to deployments;
//! * `reaper`: times out deployments that stopped moving, and prunes;
//! * `github_status`: sends queued commit statuses and Deployments to GitHub;
//! * `dead_letters`: turns dead-lettered messages into a definite state;
//! * `converge`: sends the deploy-workers what should run, for their
//!   reconciler;
//! * `retention`: prunes release images rollback no longer reaches, and
//!   the log topics of deleted apps.

pub mod converge;
pub mod dead_letters;
pub mod github_status;
pub mod inform;
pub mod reaper;
pub mod relay;
pub mod retention;
