//! Assembling the HTTP app and running the process: API, health endpoints,
//! static web UI on the public listener; `/metrics` (with health) on the
//! ops listener; outbox relay, inform consumer, reaper, GitHub status
//! reporter, open-slot heartbeat; clean stop on SIGTERM or ctrl-c.

use crate::background::converge::Converger;
use crate::background::dead_letters::DeadLetterSettler;
use crate::background::github_status::{ReporterSettings, StatusReporter};
use crate::background::inform::InformHandler;
use crate::background::reaper::{Reaper, ReaperSettings};
use crate::background::relay::{Relay, RelaySettings};
use crate::background::retention::registry::RegistryImages;
use crate::background::retention::{Retention, RetentionSettings};
use crate::config::Config;
use crate::credentials::tokens::TokenKeys;
use crate::deployments::dispatch::BuildSlots;
use crate::error::Error;
use crate::github_api::ReqwestGitHub;
use crate::health::Health;
use crate::logs::{KafkaLogReader, LogReader};
use crate::mail::SmtpMailer;
use crate::state::{ApiSettings, AppState};
use crate::web_security::{self, AllowedHosts};
use crate::{
    accounts, apps, auth, db, deployments, docs, domains, events, github, log_api, webhooks,
};
use axum::extract::Request;
use axum::Router;
use berth_common::log_topics::LogTopics;
use berth_common::ops::Readiness;
use berth_proto::names::{INFORM_QUEUE, WORK_QUEUES};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

/// Everything under `/api/v1`.
pub fn api_router(state: AppState) -> Router {
    let registry_tokens = crate::registry_tokens::router(state.registry_tokens.clone());
    let api = Router::new()
        .merge(auth::router())
        .merge(accounts::router())
        .merge(apps::router())
        .merge(domains::router())
        .merge(deployments::router())
        .merge(log_api::router())
        .merge(webhooks::router())
        .merge(github::router())
        .merge(events::router())
        .merge(docs::router())
        .with_state(state)
        // Its own state; the fallbacks below answer for it too.
        .merge(registry_tokens)
        .fallback(|| async { Error::NoRoute })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed });
    Router::new().nest("/api/v1", api)
}

/// The whole public HTTP app: the API, `/healthz`, `/readyz`, and the web
/// UI when `frontend_dir` is given (unknown paths get its index.html, so
/// client-side routes work), with the security headers and, with a public
/// URL, the Host check. `/metrics` is not here: it is on the ops listener.
pub fn app(state: AppState, ready: Readiness, frontend_dir: Option<&Path>) -> Router {
    let public_url = state
        .settings
        .public_url
        .as_deref()
        .and_then(|u| u.parse().ok());
    let allowed = AllowedHosts::new(public_url.as_ref(), &state.settings.allowed_hosts);
    let internal = domains::internal_router().with_state(state.clone());
    let router = api_router(state)
        .merge(internal)
        .merge(berth_common::ops::health_router(ready));
    let router = match frontend_dir {
        Some(dir) => router
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => router.fallback(|| async { Error::NoRoute }),
    };
    let router = web_security::apply(router, public_url.as_ref(), allowed);
    router.layer(
        TraceLayer::new_for_http().make_span_with(|request: &Request| {
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(),
                user_id = tracing::field::Empty)
        }),
    )
}

fn api_settings(config: &Config) -> ApiSettings {
    ApiSettings {
        allow_local_repos: config.allow_local_repos,
        local_repo_root: config.local_repo_root.clone(),
        websocket_origins: config.websocket_origins(),
        allowed_hosts: config.allowed_host_names(),
        // Checked by Config::validate before serving.
        quotas: config.quota.quotas().unwrap_or_default(),
        webhook_rate_per_minute: config.webhook_rate_limit,
        webhook_verify_concurrency: usize::from(config.webhook_verify_concurrency.max(1)),
        refresh_token_ttl: Duration::from_secs(u64::from(config.refresh_token_days) * 86_400),
        public_url: config
            .public_url
            .as_ref()
            .map(|url| url.as_str().trim_end_matches('/').to_owned()),
        // Checked by Config::validate before serving.
        trusted_proxies: config.trusted_proxies().unwrap_or_default(),
        password_reset_ttl: Duration::from_secs(
            u64::from(config.password_reset_ttl_minutes.max(1)) * 60,
        ),
        auth_rate_per_minute: config.auth_rate_limit,
        ..ApiSettings::default()
    }
}

/// `berth-backend migrate`.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let pool = db::connect(&config.database_url, 2).await?;
    db::migrate(&pool).await?;
    tracing::info!("database migrated");
    let rebound = crate::sealing::rebind_legacy(&pool, &config.secret.key()?).await?;
    tracing::info!(ran = rebound.ran, counts = ?rebound.counts, unreadable = rebound.unreadable,
        "stored sealed values checked for bindings");
    config
        .broker
        .broker("berth-backend-migrate")
        .ensure_topology()
        .await?;
    tracing::info!("broker topology declared");
    pool.close().await;
    Ok(())
}

/// `berth-backend serve`.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    config.validate()?;
    let tokens = TokenKeys::new(config.jwt_secret()?)?;
    let key = config.secret.key()?;
    let pool = db::connect(&config.database_url, config.database_max_connections).await?;
    db::migrate(&pool).await?;
    let rebound = crate::sealing::rebind_legacy(&pool, &key).await?;
    if rebound.ran {
        tracing::info!(counts = ?rebound.counts, unreadable = rebound.unreadable,
            "values sealed before bindings were sealed again for their owners");
    }
    if rebound.unreadable > 0 {
        tracing::warn!(
            unreadable = rebound.unreadable,
            "some stored sealed values do not open with BERTH_SECRET_KEY; they stay refused, \
             and the re-sealing pass runs again at the next start"
        );
    }
    let broker = config.broker.broker("berth-backend");
    match tokio::time::timeout(Duration::from_secs(10), broker.ensure_topology()).await {
        Ok(Ok(())) => tracing::info!("broker topology declared"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "the broker is unreachable; intents wait in the outbox")
        }
        Err(_) => tracing::warn!("the broker did not answer; intents wait in the outbox"),
    }
    let logs: Arc<dyn LogReader> = Arc::new(
        KafkaLogReader::new(
            &config.kafka.kafka_brokers,
            config.kafka.log_retention_hours,
        )
        .map_err(|e| anyhow::anyhow!("log reader: {e}"))?,
    );
    let github =
        ReqwestGitHub::new(config.github_api_url.as_str())?.with_oauth(config.github_oauth()?);
    let mut state = AppState::new(pool.clone(), key, tokens, logs, api_settings(&config))
        .with_github(Arc::new(github));
    match config.registry_tokens()? {
        Some(issuer) => {
            tracing::info!(service = issuer.settings().service, issuer = issuer.settings().issuer,
                "serving the registry token service at /api/v1/registry/token");
            state = state.with_registry_tokens(Arc::new(issuer));
        }
        None => tracing::warn!(
            "BERTH_REGISTRY_TOKEN_KEY is not set: this backend issues no registry tokens, so              builds cannot push and deploys cannot pull from a registry that names it its realm"
        ),
    }
    match config.smtp_url.as_deref() {
        Some(url) => state = state.with_mailer(Arc::new(SmtpMailer::new(url, &config.mail_from)?)),
        None => tracing::warn!(
            "BERTH_SMTP_URL is not set: password reset by email is off, and sign-ups and \
             email changes take effect unconfirmed (answering 409 to a taken email or username)"
        ),
    }
    let custom_domains = Arc::new(crate::custom_domains::Domains::new(
        &config.domains,
        config
            .console_host
            .clone()
            .filter(|host| !host.trim().is_empty()),
    )?);
    state = state.with_domains(custom_domains.clone());
    let shutdown = state.shutdown.clone();

    let mut tasks = JoinSet::new();
    let relay = Relay::new(
        pool.clone(),
        broker.clone(),
        state.outbox.clone(),
        RelaySettings {
            deadline_scale: config.deadline_scale,
            build_slots: BuildSlots {
                total: config.build_slots,
                per_tenant: config.tenant_build_slots,
            },
            ..RelaySettings::default()
        },
    );
    tasks.spawn(relay.run(shutdown.clone()));
    let (consumer, handler, stop) = (
        broker.clone(),
        Arc::new(auto_rollback(
            InformHandler::new(pool.clone())
                .with_status_reporter(state.github_status.clone())
                .with_outbox(state.outbox.clone()),
            config.rollback_window_secs,
            state.github.host(),
        )),
        shutdown.clone(),
    );
    let concurrency = config.inform_concurrency.max(1);
    let settler = Arc::new(DeadLetterSettler::new(
        pool.clone(),
        handler.clone(),
        state.outbox.clone(),
    ));
    tasks.spawn(async move {
        consumer
            .consume(INFORM_QUEUE, concurrency, handler, stop)
            .await
    });
    if config.converge_interval_secs > 0 {
        let converger = Converger::new(
            pool.clone(),
            broker.clone(),
            Duration::from_secs(config.converge_interval_secs),
        )
        .with_wake(custom_domains.routes_changed.clone());
        tasks.spawn(converger.run(shutdown.clone()));
    }
    let checks = crate::background::domain_checks::DomainChecks::new(pool.clone(), custom_domains);
    tasks.spawn(checks.run(shutdown.clone()));
    if let Some(retention) = retention(&config, &state, pool.clone())? {
        tasks.spawn(retention.run(shutdown.clone()));
    }
    for queue in WORK_QUEUES {
        let (consumer, settler, stop) = (broker.clone(), settler.clone(), shutdown.clone());
        tasks.spawn(async move { consumer.consume_dead_letters(queue, 1, settler, stop).await });
    }
    let reaper = Reaper::new(
        pool.clone(),
        ReaperSettings {
            interval: Duration::from_secs(config.reaper_interval_secs.max(1)),
            deadline_scale: config.deadline_scale,
        },
    )
    .with_outbox(state.outbox.clone());
    tasks.spawn(reaper.run(shutdown.clone()));
    let (hub, db, stop) = (state.events.clone(), pool.clone(), shutdown.clone());
    tasks.spawn(async move { hub.run(db, stop).await });
    let (ends, db, stop) = (state.sessions.clone(), pool.clone(), shutdown.clone());
    tasks.spawn(async move { ends.run(db, stop).await });
    let reporter = StatusReporter::new(
        pool.clone(),
        state.key.clone(),
        ReqwestGitHub::new(config.github_api_url.as_str())?,
        state.github_status.clone(),
        ReporterSettings {
            public_url: state.settings.public_url.clone(),
            max_attempts: i32::from(config.github_status_max_attempts.max(1)),
            max_age: Duration::from_secs(config.github_status_max_age_minutes.max(1) * 60),
            ..ReporterSettings::default()
        },
    );
    tasks.spawn(reporter.run(shutdown.clone()));
    let health = Health::new(broker.clone());
    tasks.spawn(health.clone().run(pool.clone(), shutdown.clone()));
    tasks.spawn(state.slots.clone().run(shutdown.clone()));
    berth_common::ops::serve(config.ops.ops_addr, health.readiness()).await?;

    let app = app(state, health.readiness(), config.frontend_dir.as_deref());
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "serving the API");
    let stop = shutdown.clone();
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        tokio::select! {
            _ = berth_common::shutdown::signalled() => {}
            _ = stop.cancelled() => {}
        }
        tracing::info!("shutting down");
        stop.cancel();
    })
    .await?;
    shutdown.cancel();
    let drained = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("background tasks did not stop in time");
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Retention, when it is on and there is a registry whose tokens this
/// backend signs (it deletes images with a token of its own).
fn retention(
    config: &Config,
    state: &AppState,
    pool: sqlx::PgPool,
) -> anyhow::Result<Option<Retention<RegistryImages>>> {
    let (Some(issuer), Some(registry)) = (&state.registry_tokens, config.registry.as_deref())
    else {
        tracing::warn!("no registry or token key: release images are never pruned");
        return Ok(None);
    };
    if config.retention_interval_secs == 0 {
        return Ok(None);
    }
    let images = RegistryImages::new(registry, issuer.clone())?;
    let topics = if config.log_topic_delete {
        Some(LogTopics::new(&config.kafka.kafka_brokers)?)
    } else {
        tracing::info!("BERTH_LOG_TOPIC_DELETE=false: deleted apps' log topics are kept");
        None
    };
    let settings = RetentionSettings {
        rollback_releases: config.rollback_releases,
        topic_grace: Duration::from_secs(600),
        interval: Duration::from_secs(config.retention_interval_secs),
    };
    Ok(Some(Retention::new(pool, images, topics, settings)))
}

/// Automatic rollback is on unless its window is 0.
fn auto_rollback(handler: InformHandler, window_secs: u64, github_host: &str) -> InformHandler {
    if window_secs == 0 {
        tracing::warn!(
            "BERTH_ROLLBACK_WINDOW_SECS=0: releases that crash-loop are not rolled back"
        );
        return handler;
    }
    handler.with_auto_rollback(crate::background::inform::AutoRollback {
        window: std::time::Duration::from_secs(window_secs),
        github_host: github_host.to_owned(),
    })
}
