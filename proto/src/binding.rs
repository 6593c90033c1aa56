//! What a sealed value is for and whose it is: the associated data that
//! AES-GCM authenticates along with the ciphertext.
//!
//! Without it every sealed blob opens anywhere the key is known: an env set
//! copied into another app's row (or into a forged `deploy.requested`) would
//! be decrypted into that app. Bound, a blob opens only for the owner,
//! purpose and field it was sealed for; a moved blob fails like a tampered
//! one. The binding is never stored: both sides rebuild it from what they
//! know (the row's ids, the message's app and tenant).

use std::fmt;
use uuid::Uuid;

/// The owner and purpose a value is sealed for. Build one with the
/// constructor for its purpose; the encoding is private.
#[derive(Clone, PartialEq, Eq)]
pub struct Binding(Vec<u8>);

/// What a sealed value is; part of every binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An app's env var set (the app row, every release's config).
    AppEnv,
    /// The repository token a build of an app clones with (`build.requested`).
    BuildToken,
    /// A user's GitHub token, as stored on the linked account.
    GitHubToken,
    /// An app's push webhook secret.
    WebhookSecret,
    /// The PKCE verifier of a GitHub sign-in in progress.
    PkceVerifier,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::AppEnv => "app-env",
            Self::BuildToken => "build-token",
            Self::GitHubToken => "github-token",
            Self::WebhookSecret => "webhook-secret",
            Self::PkceVerifier => "pkce-verifier",
        }
    }
}

impl Binding {
    /// Length-prefixed fields, so that no two different field lists encode
    /// to the same bytes (`a|b` + `c` vs `a` + `b|c`).
    fn new(purpose: Purpose, fields: &[(&str, &str)]) -> Self {
        let mut bytes = Vec::with_capacity(96);
        let mut push = |part: &str| {
            bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
            bytes.extend_from_slice(part.as_bytes());
        };
        push("berth.sealed");
        push(purpose.as_str());
        for (name, value) in fields {
            push(name);
            push(value);
        }
        Self(bytes)
    }

    /// An app's env var set: in the app's row and in every release config
    /// made from it, so a deploy-worker rebuilds it from the release's app.
    pub fn app_env(tenant: &str, app_id: Uuid) -> Self {
        Self::new(
            Purpose::AppEnv,
            &[("tenant", tenant), ("app", &app_id.to_string())],
        )
    }

    /// The token one app's builds clone with, as `build.requested` carries
    /// it; the build-worker rebuilds it from the message's app.
    pub fn build_token(tenant: &str, app_id: Uuid) -> Self {
        Self::new(
            Purpose::BuildToken,
            &[("tenant", tenant), ("app", &app_id.to_string())],
        )
    }

    /// A user's GitHub token on their linked account.
    pub fn github_token(user_id: Uuid) -> Self {
        Self::new(Purpose::GitHubToken, &[("user", &user_id.to_string())])
    }

    /// An app's push webhook secret.
    pub fn webhook_secret(app_id: Uuid) -> Self {
        Self::new(Purpose::WebhookSecret, &[("app", &app_id.to_string())])
    }

    /// The PKCE verifier of one pending GitHub sign-in, named by the hash
    /// of its `state` (the row's key).
    pub fn pkce_verifier(state_hash: &[u8]) -> Self {
        let hex: String = state_hash.iter().map(|b| format!("{b:02x}")).collect();
        Self::new(Purpose::PkceVerifier, &[("state", &hex)])
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Binding {
    /// The fields are ids, not secrets, but a binding is never worth
    /// printing in full: its purpose says enough.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Binding(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_owner_and_field_gives_its_own_binding() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let all = [
            Binding::app_env("t", a),
            Binding::app_env("t", b),
            Binding::app_env("u", a),
            Binding::build_token("t", a),
            Binding::github_token(a),
            Binding::webhook_secret(a),
            Binding::pkce_verifier(b"t"),
        ];
        for (i, x) in all.iter().enumerate() {
            for (j, y) in all.iter().enumerate() {
                assert_eq!(i == j, x == y, "{i} vs {j}");
            }
        }
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        assert_ne!(
            Binding::new(Purpose::AppEnv, &[("tenant", "a"), ("app", "b")]),
            Binding::new(Purpose::AppEnv, &[("tenant", "a\0\0\0\x03app"), ("", "b")]),
        );
    }
}
