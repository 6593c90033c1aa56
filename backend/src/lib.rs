//! berth's backend: accounts, apps, releases, deployments, logs and GitHub
//! webhooks over HTTP; the outbox relay that hands intents to the workers; the inform
//! consumer that moves deployments through their states; the reaper; the
//! reporter that tells GitHub how deployments went.
//!
//! The modules below import each other in one direction only
//! (`tests/module_graph.rs` fails on a circle). At the bottom are the
//! pieces with no HTTP: `error`, `config`, stores and clients such as
//! `apps_store`, `credentials`, `github_api`, `event_hub`,
//! `webhook_guard`, `session_ends`. `state` (`AppState`) holds some of
//! them and imports nothing else. Above it are the request handlers, each
//! taking `AppState`; `server` at the top wires handlers and loops together.

pub mod accounts;
pub mod apps;
pub mod apps_store;
pub mod audit;
pub mod auth;
pub mod background;
pub mod config;
pub mod credentials;
pub mod custom_domains;
pub mod db;
pub mod deployments;
pub mod docs;
pub mod domains;
pub mod error;
pub mod event_hub;
pub mod events;
pub mod extract;
pub mod github;
pub mod github_api;
pub mod github_status;
pub mod health;
pub mod log_api;
pub mod logs;
pub mod mail;
pub mod outbox;
pub mod pg_notify;
pub mod quota;
pub mod registry_tokens;
pub mod sealing;
pub mod server;
pub mod session_ends;
pub mod state;
pub mod tenant_names;
pub mod validate;
pub mod web_security;
pub mod webhook_guard;
pub mod webhooks;

pub use config::{Command, Config};
pub use error::{Error, Result};

/// Runs the command `config` names (`serve` by default).
pub async fn run(config: Config) -> anyhow::Result<()> {
    match config.command.unwrap_or(Command::Serve) {
        Command::Migrate => server::migrate(&config).await,
        Command::Serve => server::serve(config).await,
    }
}
