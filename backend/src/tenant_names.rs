//! Tenant names: a username is its tenant's name, and must not collide
//! with another tenant's namespaces or with berth's own names. The one list
//! of what is kept back.

use crate::validate::{dns_label, MAX_USERNAME_LEN};

/// Names no tenant may have, in one place. A tenant name is a username:
/// it names the namespaces `berth-<name>` and `berth-<name>-build`, the
/// registry paths `<name>/<app>` and hostnames `<app>.<name>.<apps domain>`.
/// So berth's own namespace (`berth-system`), the registry's shared paths
/// (`cache/<tenant>`), Kubernetes' and berth's own names, and names people
/// take for the operator's are kept back.
pub const RESERVED_TENANT_NAMES: &[&str] = &[
    "admin",
    "administrator",
    "api",
    "apps",
    "auth",
    "berth",
    "cache",
    "default",
    "github",
    "kube",
    "kubernetes",
    "login",
    "mail",
    "metrics",
    "operator",
    "postmaster",
    "registry",
    "root",
    "security",
    "staff",
    "static",
    "status",
    "support",
    "system",
    "www",
];

/// Endings that would make a tenant's namespace another tenant's:
/// `berth-<x>-build` is tenant x's build namespace.
pub const RESERVED_TENANT_SUFFIXES: &[&str] = &["-build"];

/// A tenant name (a username): a DNS-1123 label that collides with no other
/// tenant's namespaces and is none of berth's own names.
pub fn tenant_name(value: &str) -> Result<(), String> {
    dns_label(value, MAX_USERNAME_LEN)?;
    if RESERVED_TENANT_NAMES.contains(&value) {
        return Err(format!(
            "`{value}` is reserved for berth itself; choose another"
        ));
    }
    if let Some(suffix) = RESERVED_TENANT_SUFFIXES
        .iter()
        .find(|s| value.ends_with(*s))
    {
        return Err(format!(
            "must not end in `{suffix}`: berth names another tenant's namespace that way"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names_keep_clear_of_namespaces_and_reserved_names() {
        assert!(tenant_name("alice").is_ok());
        assert!(tenant_name("builder").is_ok());
        assert!(tenant_name("build-bot").is_ok());
        assert!(tenant_name("system").unwrap_err().contains("reserved"));
        assert!(tenant_name("victim-build").unwrap_err().contains("-build"));
        assert!(tenant_name("Alice").is_err());
    }
}
