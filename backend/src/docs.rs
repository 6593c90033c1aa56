//! The OpenAPI document, served at `/api/v1/openapi.json`.

use crate::state::AppState;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "berth API",
        version = "1",
        description = "Accounts (and GitHub sign-in), apps, deployments, releases, logs, GitHub repositories and webhooks, and the audit log. \
            Errors are application/problem+json documents with a stable `type`."
    ),
    paths(
        crate::accounts::signup::register,
        crate::accounts::signup::confirm,
        crate::auth::login,
        crate::auth::refresh,
        crate::auth::logout,
        crate::accounts::me,
        crate::accounts::update_me,
        crate::accounts::email_change::confirm,
        crate::accounts::change_password,
        crate::accounts::delete_me,
        crate::accounts::unlink_github,
        crate::accounts::list_sessions,
        crate::accounts::end_session,
        crate::accounts::reset::request,
        crate::accounts::reset::confirm,
        crate::github::oauth::start,
        crate::github::oauth::callback,
        crate::github::linking::link,
        crate::github::repos::list_repos,
        crate::github::repos::list_branches,
        crate::apps::create_app,
        crate::apps::list_apps,
        crate::apps::get_app,
        crate::apps::update_app,
        crate::apps::delete_app,
        crate::apps::get_env,
        crate::apps::scale_app,
        crate::apps::quota_view::get_quota,
        crate::domains::add_domain,
        crate::domains::list_domains,
        crate::domains::get_domain,
        crate::domains::verify_domain,
        crate::domains::remove_domain,
        crate::deployments::create_deployment,
        crate::deployments::list_deployments,
        crate::deployments::get_deployment,
        crate::deployments::cancel_deployment,
        crate::deployments::list_releases,
        crate::log_api::read_logs,
        crate::log_api::ws::follow_logs,
        crate::auth::tickets::create_ticket,
        crate::webhooks::receive_github,
        crate::webhooks::repo_wide::receive_github_repo,
        crate::webhooks::manage::create_webhook,
        crate::webhooks::manage::get_webhook,
        crate::webhooks::manage::delete_webhook,
        crate::accounts::audit_log::list_events,
        crate::events::stream,
        crate::registry_tokens::token,
        openapi_json,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError,
        crate::github::linking::LinkedResponse)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign-up, sign-in and sessions"),
        (name = "account", description = "Your profile, password and account; password reset by email"),
        (name = "apps", description = "Apps and their configuration"),
        (name = "domains", description = "Custom domains of an app, their verification and certificates"),
        (name = "deployments", description = "Deployments and releases"),
        (name = "logs", description = "Build and runtime logs"),
        (name = "webhooks", description = "GitHub push webhooks"),
        (name = "github", description = "Your GitHub repositories and branches, through your linked account"),
        (name = "audit", description = "What was done on your account, by whom, from where"),
        (name = "registry", description = "The image registry's token service, for berth's own processes"),
        (name = "docs", description = "This document"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "docs",
    responses((status = 200, description = "the OpenAPI 3.1 document")))]
async fn openapi_json() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
