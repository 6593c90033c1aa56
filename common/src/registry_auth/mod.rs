//! Per-tenant registry credentials. The registry (Distribution v2) uses
//! token authentication with berth as the issuer: a client presents a
//! short-lived [grant](grant) as basic credentials to berth's token service,
//! which answers a token (a JWT) whose `access` names only that tenant's
//! repositories.
//!
//! [`RegistryCredentials`] is the seam every registry client goes through:
//! the build-worker's pushes and digest lookups, the deploy-worker's engine
//! pulls and Kubernetes image pull secrets, Kaniko's per-build Secrets.

pub mod grant;

pub use grant::{
    unix_now, Access, Credentials, Grant, GrantError, GrantKey, Grants, RegistryCredentials,
};
