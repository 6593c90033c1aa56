//! Rules for what users type: names, repository URLs, env vars, refs.
//! Each check returns the message a user reads next to the field.

use crate::error::{Error, FieldError, Result};
use berth_common::repo_policy::{RepoPolicy, RepoRefusal, SystemResolver};
use std::collections::BTreeMap;

/// Longest tenant slug: `berth-<tenant>-build` must stay a DNS-1123 label.
pub const MAX_USERNAME_LEN: usize = 40;
/// Longest app name (a DNS-1123 label).
pub const MAX_APP_NAME_LEN: usize = 63;
pub const MIN_PASSWORD_CHARS: usize = 10;
const MAX_PASSWORD_BYTES: usize = 1024;
const MAX_ENV_VARS: usize = 200;
const MAX_ENV_VALUE_BYTES: usize = 32 * 1024;

/// A DNS-1123 label: lowercase letters, digits and `-`, starting and ending
/// with a letter or digit.
pub fn dns_label(value: &str, max_len: usize) -> Result<(), String> {
    if value.is_empty() || value.len() > max_len {
        return Err(format!("must be 1 to {max_len} characters long"));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("may contain only lowercase letters, digits and '-'".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err("must start and end with a letter or a digit".into());
    }
    Ok(())
}

/// An app name: a DNS-1123 label that starts with a letter, because it
/// names Kubernetes Services, whose names are DNS-1035 labels.
pub fn app_name(value: &str, max_len: usize) -> Result<(), String> {
    dns_label(value, max_len)?;
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must start with a lowercase letter".into());
    }
    Ok(())
}

/// How many instances an app may run.
pub const MAX_REPLICAS: u32 = 20;

pub fn replicas(value: u32) -> Result<(), String> {
    if value > MAX_REPLICAS {
        Err(format!("must be between 0 (stopped) and {MAX_REPLICAS}"))
    } else {
        Ok(())
    }
}

pub fn email(value: &str) -> Result<(), String> {
    let valid = value.len() <= 254
        && !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
        });
    if valid {
        Ok(())
    } else {
        Err("must be an email address".into())
    }
}

pub const MAX_DISPLAY_NAME_CHARS: usize = 100;

/// A display name: any text a person goes by, without control characters.
pub fn display_name(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(format!(
            "must be at most {MAX_DISPLAY_NAME_CHARS} characters"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

pub fn password(value: &str) -> Result<(), String> {
    if value.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters long"
        ));
    }
    if value.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes long"));
    }
    Ok(())
}

/// `https://` on a public host; local folders (inside the root), plain
/// `http://` and internal hosts only when local repositories are allowed.
/// The same policy as the build-worker's, which checks again before every
/// fetch.
pub fn repo_url(value: &str, policy: &RepoPolicy) -> Result<(), String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is required".into());
    }
    if value.len() > 2048 {
        return Err("must be at most 2048 characters long".into());
    }
    policy.check(value).map(drop).map_err(|e| e.to_string())
}

/// After [`repo_url`]: the host's name must not resolve to an internal
/// address. A name that does not resolve now passes; the build-worker
/// resolves it again before fetching.
pub async fn repo_host(value: &str, policy: &RepoPolicy) -> Result<()> {
    match policy.check_resolved(value.trim(), &SystemResolver).await {
        Ok(_) | Err(RepoRefusal::Unresolvable { .. }) => Ok(()),
        Err(refusal) => Err(Error::invalid("repo_url", refusal.to_string())),
    }
}

/// A branch or tag name as Git accepts it (the common subset).
pub fn git_ref(value: &str) -> Result<(), String> {
    let bad = value.is_empty()
        || value.len() > 255
        || value.starts_with(['-', '/', '.'])
        || value.ends_with(['/', '.'])
        || value.ends_with(".lock")
        || value.contains("..")
        || value.contains("//")
        || value.contains("@{")
        || value
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "~^:?*[\\".contains(c));
    if bad {
        Err("must be a valid branch or tag name".into())
    } else {
        Ok(())
    }
}

/// A commit SHA, abbreviated (7 hex digits) or full (40).
pub fn commit(value: &str) -> Result<(), String> {
    if (7..=40).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err("must be a hexadecimal commit SHA of 7 to 40 characters".into())
    }
}

/// A relative folder inside the repository.
pub fn subdirectory(value: &str) -> Result<(), String> {
    let bad = value.is_empty()
        || value.len() > 1024
        || value.starts_with('/')
        || value.contains('\\')
        || value.chars().any(char::is_control)
        || value.split('/').any(|part| part == "..");
    if bad {
        Err("must be a relative folder inside the repository".into())
    } else {
        Ok(())
    }
}

/// An HTTP health check path: absolute, at most 256 bytes, the characters
/// a URL path and query may hold (no spaces, no fragment).
pub fn health_check_path(value: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/-._~!$&'()*+,;=:@%?".contains(c);
    if !value.starts_with('/') || value.starts_with("//") || value.len() > 256 {
        Err("must be a path starting with a single /, at most 256 characters".into())
    } else if !value.chars().all(allowed) {
        Err("may hold only the characters of a URL path and query".into())
    } else {
        Ok(())
    }
}

pub fn port(value: u16) -> Result<(), String> {
    if value == 0 {
        Err("must be between 1 and 65535".into())
    } else {
        Ok(())
    }
}

/// Env var names match `[A-Za-z_][A-Za-z0-9_]*` and are not `PORT`
/// (berth sets it). Returns every problem as `(field, message)`.
pub fn env(vars: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if vars.len() > MAX_ENV_VARS {
        problems.push((
            "env".to_owned(),
            format!("at most {MAX_ENV_VARS} variables"),
        ));
    }
    for (key, value) in vars {
        let mut chars = key.chars();
        let well_formed = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && key.len() <= 256;
        if !well_formed {
            problems.push((
                format!("env.{key}"),
                "names must match [A-Za-z_][A-Za-z0-9_]*".into(),
            ));
        } else if key == "PORT" {
            problems.push((
                format!("env.{key}"),
                "PORT is set by berth from the app's port".into(),
            ));
        }
        if value.len() > MAX_ENV_VALUE_BYTES {
            problems.push((
                format!("env.{key}"),
                format!("values must be at most {MAX_ENV_VALUE_BYTES} bytes"),
            ));
        }
        if value.contains('\0') {
            problems.push((format!("env.{key}"), "values must not contain NUL".into()));
        }
    }
    problems
}

/// Collects every invalid field before answering.
#[derive(Default)]
pub struct Checks(Vec<FieldError>);

impl Checks {
    pub fn check(&mut self, field: &str, result: std::result::Result<(), String>) {
        if let Err(message) = result {
            self.0.push(FieldError::new(field, message));
        }
    }

    pub fn env(&mut self, vars: &BTreeMap<String, String>) {
        for (field, message) in env(vars) {
            self.0.push(FieldError::new(field, message));
        }
    }

    pub fn errors(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.0.extend(errors);
    }

    pub fn finish(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_check_paths() {
        for good in ["/", "/healthz", "/api/health?full=1", "/a%20b"] {
            assert!(health_check_path(good).is_ok(), "{good:?}");
        }
        let long = format!("/{}", "a".repeat(256));
        for bad in [
            "",
            "healthz",
            "//evil.example/",
            "/a b",
            "/a#b",
            "/\n",
            "/é",
            &long,
        ] {
            assert!(health_check_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dns_labels() {
        assert!(dns_label("my-app-2", 63).is_ok());
        for bad in ["", "-a", "a-", "My", "a_b", "a.b", &"a".repeat(64)] {
            assert!(dns_label(bad, 63).is_err(), "{bad:?}");
        }
    }

    fn local(root: &str) -> RepoPolicy {
        RepoPolicy {
            allow_local: true,
            local_root: Some(root.into()),
        }
    }

    #[test]
    fn repo_urls() {
        let public = RepoPolicy::default();
        assert!(repo_url("https://github.com/o/r.git", &public).is_ok());
        assert!(repo_url("http://github.com/o/r", &public)
            .unwrap_err()
            .contains("https"));
        assert!(repo_url("ssh://git@github.com/o/r", &public).is_err());
        assert!(repo_url("https://user:pw@github.com/o/r", &public).is_err());
        assert!(repo_url("file:///srv/repo", &public)
            .unwrap_err()
            .contains("local"));
        assert!(repo_url("/srv/repo", &public).is_err());
        assert!(repo_url("file:///srv/repo", &local("/srv")).is_ok());
        assert!(repo_url("/srv/repo", &local("/srv")).is_ok());
        assert!(repo_url("not a url", &public).is_err());
    }

    /// L1: before, http:// to loopback was always accepted, and https://
    /// to any address (the metadata service, the cluster's API server).
    #[test]
    fn internal_hosts_need_local_development() {
        let public = RepoPolicy::default();
        for url in [
            "http://127.0.0.1:3000/o/r",
            "http://localhost/o/r",
            "http://[::1]/o/r",
            "https://10.0.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://kubernetes.default.svc/x",
            "https://[fd00:ec2::254]/x",
        ] {
            assert!(repo_url(url, &public).is_err(), "{url}");
            assert!(repo_url(url, &local("/srv")).is_ok(), "{url}");
        }
    }

    /// L4: local repositories only inside the root.
    #[test]
    fn local_folders_outside_the_root_are_refused() {
        for url in ["/etc", "file:///etc/", "/srv/../etc", "/srvx/repo"] {
            assert!(
                repo_url(url, &local("/srv"))
                    .unwrap_err()
                    .contains("must be inside /srv"),
                "{url}"
            );
        }
        assert!(repo_url(
            "/srv/repo",
            &RepoPolicy {
                allow_local: true,
                local_root: None
            }
        )
        .unwrap_err()
        .contains("BERTH_LOCAL_REPO_ROOT"));
    }

    #[test]
    fn env_keys() {
        let vars = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(env(&vars(&[("DATABASE_URL", "x"), ("_a1", "")])).is_empty());
        assert_eq!(env(&vars(&[("1A", "x")]))[0].0, "env.1A");
        assert_eq!(env(&vars(&[("A-B", "x")])).len(), 1);
        assert_eq!(env(&vars(&[("PORT", "1")])).len(), 1);
        assert_eq!(env(&vars(&[("", "1")])).len(), 1);
    }

    #[test]
    fn refs_commits_and_folders() {
        assert!(git_ref("main").is_ok());
        assert!(git_ref("release/v1.2").is_ok());
        for bad in ["", "a..b", "-x", "a b", "a~1", "x.lock", "a/"] {
            assert!(git_ref(bad).is_err(), "{bad:?}");
        }
        assert!(commit("abc1234").is_ok());
        assert!(commit(&"a".repeat(40)).is_ok());
        assert!(commit("abc12").is_err());
        assert!(commit("xyz1234").is_err());
        assert!(subdirectory("services/api").is_ok());
        assert!(subdirectory("../etc").is_err());
        assert!(subdirectory("/etc").is_err());
        assert!(email("a@b.co").is_ok());
        assert!(email("a@b").is_err());
        assert!(password("short").is_err());
        assert!(password("long enough pw").is_ok());
    }
}
