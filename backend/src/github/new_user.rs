//! The account a first GitHub sign-in makes: password-less, named after
//! the GitHub login.

use super::store;
use crate::auth;
use crate::error::{Error, Result};
use crate::github_api::GitHubUser;
use crate::{tenant_names, validate};
use sqlx::PgConnection;
use uuid::Uuid;

/// A new password-less user named after the GitHub login.
pub async fn create_user(conn: &mut PgConnection, github: &GitHubUser) -> Result<Uuid> {
    let email = github
        .email
        .clone()
        .unwrap_or_else(|| format!("{}+{}@users.noreply.github.com", github.id, github.login));
    let base = username_base(&github.login);
    let mut username = base.clone();
    for n in 2.. {
        if !store::username_taken(conn, &username).await? {
            break;
        }
        let suffix = format!("-{n}");
        let keep = validate::MAX_USERNAME_LEN - suffix.len();
        username = format!("{}{suffix}", label_within(&base, keep));
    }
    let user = auth::store::insert_user(conn, &username, &email, None)
        .await
        .map_err(|error| match error {
            Error::Conflict(_) | Error::Taken(_) => Error::Conflict(
                "a berth account already uses this GitHub account's email; sign in to it and link GitHub"
                    .into(),
            ),
            other => other,
        })?;
    Ok(user.id)
}

/// A tenant name from a GitHub login (`Octo_Cat` → `octo-cat`). A login
/// that maps to a reserved name or to another tenant's namespace
/// (`system`, `victim-build`) gets `-gh` appended.
pub fn username_base(login: &str) -> String {
    let mapped: String = login
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let label = label_within(mapped.trim_matches('-'), validate::MAX_USERNAME_LEN);
    if tenant_names::tenant_name(&label).is_ok() {
        return label;
    }
    let suffix = "-gh";
    let label = label_within(&label, validate::MAX_USERNAME_LEN - suffix.len()) + suffix;
    if tenant_names::tenant_name(&label).is_ok() {
        label
    } else {
        "github-user".into()
    }
}

/// `text` cut to `max` bytes (it is ASCII), without a trailing `-`.
fn label_within(text: &str, max: usize) -> String {
    text[..text.len().min(max)].trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_dns_labels() {
        assert_eq!(username_base("Codertocat"), "codertocat");
        assert_eq!(username_base("Octo_Cat-"), "octo-cat");
        assert_eq!(username_base("---"), "github-user");
        assert_eq!(
            username_base(&"a".repeat(60)).len(),
            validate::MAX_USERNAME_LEN
        );
    }

    /// M4: a GitHub login is no way around the reserved tenant names.
    #[test]
    fn usernames_from_github_logins_avoid_reserved_and_namespace_names() {
        for login in [
            "system",
            "Cache",
            "admin",
            "victim-build",
            "Victim_Build",
            "kube",
        ] {
            let name = username_base(login);
            assert!(
                tenant_names::tenant_name(&name).is_ok(),
                "{login} -> {name}"
            );
        }
        assert_ne!(username_base("system"), "system");
        assert!(!username_base("victim-build").ends_with("-build"));
        let long = format!("{}-build", "a".repeat(34));
        let name = username_base(&long);
        assert!(tenant_names::tenant_name(&name).is_ok(), "{long} -> {name}");
    }
}
