//! Custom domains of an app: add one, see the DNS records to create and
//! how verification and the certificate stand, check now, remove. And the
//! edge router's question before it asks for a certificate
//! ([`tls_ask`]). The rules and the checks are in `crate::custom_domains`.

pub mod model;

use crate::apps_store;
use crate::audit::{self, Event, SourceAddr};
use crate::auth::CurrentUser;
use crate::custom_domains::store::{self, PRODUCTION};
use crate::custom_domains::{self, hostname, Domains, MAX_PER_APP};
use crate::error::{Error, Result};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use model::{AddDomain, Domain};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/apps/{id}/domains", get(list_domains).post(add_domain))
        .route(
            "/apps/{id}/domains/{hostname}",
            get(get_domain).delete(remove_domain),
        )
        .route("/apps/{id}/domains/{hostname}/verify", post(verify_domain))
}

/// Not under `/api/v1`, and not routed from outside: the edge router's
/// console route leaves `/internal/` out.
pub fn internal_router() -> Router<AppState> {
    Router::new().route("/internal/router/tls-ask", get(tls_ask))
}

fn settings(state: &AppState) -> Result<&Domains> {
    state
        .domains
        .as_deref()
        .ok_or_else(|| Error::Unavailable("custom domains are not set up on this berth".into()))
}

/// Add a domain to the app. It serves once the TXT record the answer names
/// is found (berth checks every half minute, or at once with `verify`).
/// A domain another app verified is a `409`.
#[utoipa::path(post, path = "/api/v1/apps/{id}/domains", tag = "domains",
    params(("id" = Uuid, Path, description = "app id")), request_body = AddDomain,
    security(("bearer" = [])),
    responses((status = 201, body = Domain), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn add_domain(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path(id): Path<Uuid>,
    Json(request): Json<AddDomain>,
) -> Result<(StatusCode, Json<Domain>)> {
    let domains = settings(&state)?;
    let host = hostname::normalize(
        &request.hostname,
        &domains.apps_domain,
        domains.console_host.as_deref(),
    )
    .map_err(|why| Error::invalid("hostname", why))?;
    let environment = request.environment.as_deref().unwrap_or(PRODUCTION);
    if environment != PRODUCTION {
        return Err(Error::invalid(
            "environment",
            "only the production environment exists yet",
        ));
    }
    let mut tx = state.db.begin().await?;
    let app = apps_store::lock_owned(&mut tx, user.id, id).await?;
    if store::count(&mut tx, id).await? >= MAX_PER_APP {
        return Err(Error::invalid(
            "hostname",
            format!("an app may have at most {MAX_PER_APP} domains"),
        ));
    }
    if store::verified_by_another(&mut tx, &host, id).await? {
        return Err(Error::Taken(crate::error::FieldError::new(
            "hostname",
            "another app already uses this domain",
        )));
    }
    let token = hex::encode(rand::random::<[u8; 16]>());
    let row = store::insert(&mut tx, id, environment, &host, &token).await?;
    let event = Event::new(user.id, "domain.add", "app", id, source)
        .details(json!({"name": app.name, "hostname": host}));
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    domains.check_now.notify_one();
    tracing::info!(app_id = %id, hostname = %host, "domain added");
    Ok((
        StatusCode::CREATED,
        Json(Domain::new(row, domains, &app.name, &app.tenant)),
    ))
}

/// The app's domains.
#[utoipa::path(get, path = "/api/v1/apps/{id}/domains", tag = "domains",
    params(("id" = Uuid, Path, description = "app id")), security(("bearer" = [])),
    responses((status = 200, body = [Domain]), (status = 404, body = crate::error::Problem)))]
async fn list_domains(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<Domain>>> {
    let domains = settings(&state)?;
    let mut conn = state.db.acquire().await?;
    let app = apps_store::get(&mut conn, user.id, id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    let rows = store::list(&mut conn, id).await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| Domain::new(row, domains, &app.name, &app.tenant))
            .collect(),
    ))
}

/// One domain of the app.
#[utoipa::path(get, path = "/api/v1/apps/{id}/domains/{hostname}", tag = "domains",
    params(("id" = Uuid, Path, description = "app id"), ("hostname" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Domain), (status = 404, body = crate::error::Problem)))]
async fn get_domain(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, host)): Path<(Uuid, String)>,
) -> Result<Json<Domain>> {
    let domains = settings(&state)?;
    let (app, row) = owned_domain(&state, user.id, id, &host).await?;
    Ok(Json(Domain::new(row, domains, &app.name, &app.tenant)))
}

/// The caller's app `id` and its domain `host`; `404` for either missing.
async fn owned_domain(
    state: &AppState,
    owner: Uuid,
    id: Uuid,
    host: &str,
) -> Result<(apps_store::AppRow, store::DomainRow)> {
    let mut conn = state.db.acquire().await?;
    let app = apps_store::get(&mut conn, owner, id)
        .await?
        .ok_or(Error::NotFound("app"))?;
    let row = store::get(&mut conn, id, &host.to_ascii_lowercase())
        .await?
        .ok_or(Error::NotFound("domain"))?;
    Ok((app, row))
}

/// Look for the domain's TXT record now. The answer says what was found:
/// `verified`, or the reason in `verification.error`.
#[utoipa::path(post, path = "/api/v1/apps/{id}/domains/{hostname}/verify", tag = "domains",
    params(("id" = Uuid, Path, description = "app id"), ("hostname" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Domain), (status = 404, body = crate::error::Problem)))]
async fn verify_domain(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, host)): Path<(Uuid, String)>,
) -> Result<Json<Domain>> {
    let domains = settings(&state)?;
    let (app, row) = owned_domain(&state, user.id, id, &host).await?;
    if row.verified_at.is_none()
        && custom_domains::check_ownership(&state.db, domains.dns.as_ref(), &row).await?
    {
        domains.routes_changed.notify_one();
        domains.check_now.notify_one();
    }
    // As the check left it.
    let mut conn = state.db.acquire().await?;
    let row = store::get(&mut conn, id, &row.hostname)
        .await?
        .ok_or(Error::NotFound("domain"))?;
    Ok(Json(Domain::new(row, domains, &app.name, &app.tenant)))
}

/// Remove a domain: the router stops answering for it.
#[utoipa::path(delete, path = "/api/v1/apps/{id}/domains/{hostname}", tag = "domains",
    params(("id" = Uuid, Path, description = "app id"), ("hostname" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 404, body = crate::error::Problem)))]
async fn remove_domain(
    State(state): State<AppState>,
    user: CurrentUser,
    source: SourceAddr,
    Path((id, host)): Path<(Uuid, String)>,
) -> Result<StatusCode> {
    let domains = settings(&state)?;
    let host = host.to_ascii_lowercase();
    let mut tx = state.db.begin().await?;
    let app = apps_store::lock_owned(&mut tx, user.id, id).await?;
    if !store::delete(&mut tx, id, &host).await? {
        return Err(Error::NotFound("domain"));
    }
    let event = Event::new(user.id, "domain.remove", "app", id, source)
        .details(json!({"name": app.name, "hostname": host}));
    audit::record(&mut tx, event).await?;
    tx.commit().await?;
    domains.routes_changed.notify_one();
    tracing::info!(app_id = %id, hostname = %host, "domain removed");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct Ask {
    domain: String,
}

/// The edge router asks before it gets a certificate for a name (Caddy's
/// on-demand TLS `ask`): `200` for a verified domain of an app that
/// exists, and, when the apps domain is a real one, for apps' own
/// hostnames and the console; `404` for anything else, so a stranger
/// pointing names at the server cannot make it order certificates.
async fn tls_ask(State(state): State<AppState>, Query(ask): Query<Ask>) -> Result<StatusCode> {
    let domains = settings(&state)?;
    let host = ask.domain.trim_end_matches('.').to_ascii_lowercase();
    let approved = store::verified_exists(&state.db, &host).await?
        || (domains.apps_domain_has_tls() && own_host(&state, domains, &host).await?);
    metrics::counter!("berth_router_tls_asks_total", "approved" => approved.to_string())
        .increment(1);
    Ok(if approved {
        StatusCode::OK
    } else {
        tracing::info!(hostname = %host, "the router asked for a certificate berth does not approve");
        StatusCode::NOT_FOUND
    })
}

/// Whether `host` is the console's or an app's own hostname.
async fn own_host(state: &AppState, domains: &Domains, host: &str) -> Result<bool> {
    if domains.console_host.as_deref() == Some(host) {
        return Ok(true);
    }
    let Some(rest) = host.strip_suffix(&format!(".{}", domains.apps_domain)) else {
        return Ok(false);
    };
    match rest.split_once('.') {
        Some((app, tenant)) if !tenant.contains('.') => {
            store::app_exists(&state.db, app, tenant).await
        }
        _ => Ok(false),
    }
}
