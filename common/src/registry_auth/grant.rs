//! Grants: the short-lived basic credentials a berth process presents to the
//! registry's token service. A grant names one tenant, one access (push or
//! pull) and an expiry, and is authenticated with a key derived from
//! `BERTH_SECRET_KEY`, which every berth process has, so any process can
//! mint one and the token service (the backend) can check it without a
//! database or a shared password.
//!
//! Written as basic credentials, a grant is
//!
//! * username `<access>.<tenant>`, e.g. `push.acme`;
//! * password `<expiry, unix seconds>.<HMAC-SHA256, base64url>`.
//!
//! The MAC covers a purpose label, the access, the tenant and the expiry,
//! so no part can be changed and a MAC made for anything else with the same
//! key never verifies as a grant.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type HmacSha256 = Hmac<Sha256>;

/// Why a key is derived: a MAC under the derived key means "registry grant"
/// and nothing else, whatever else `BERTH_SECRET_KEY` is used for.
const KEY_PURPOSE: &[u8] = b"berth/registry-grant/v1";
/// The first line of every MAC'd grant text.
const GRANT_LABEL: &str = "berth-registry-grant-v1";

/// What a grant allows on its tenant's repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Push and pull the tenant's app images and its Kaniko layer cache.
    Push,
    /// Pull the tenant's app images.
    Pull,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Pull => "pull",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "push" => Some(Self::Push),
            "pull" => Some(Self::Pull),
            _ => None,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Basic credentials for the registry (its token service), as Docker
/// config files, image pull secrets and the Engine API carry them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The `auth` field of a Docker config: base64 of `user:password`.
    pub fn basic_auth(&self) -> String {
        STANDARD.encode(format!("{}:{}", self.username, self.password))
    }
}

/// The seam every registry client of berth goes through: credentials for
/// one tenant's repositories, with `access` and nothing more.
pub trait RegistryCredentials: Send + Sync + 'static {
    fn for_tenant(&self, tenant: &str, access: Access) -> Credentials;
}

impl<T: RegistryCredentials + ?Sized> RegistryCredentials for std::sync::Arc<T> {
    fn for_tenant(&self, tenant: &str, access: Access) -> Credentials {
        (**self).for_tenant(tenant, access)
    }
}

/// A verified grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub tenant: String,
    pub access: Access,
    /// Unix seconds after which the grant is refused.
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("BERTH_SECRET_KEY must be 32 bytes encoded as base64")]
    BadKey,
    #[error("the credentials are not a berth registry grant")]
    Malformed,
    #[error("the registry grant is not authentic")]
    Forged,
    #[error("the registry grant has expired")]
    Expired,
}

/// The key grants are MAC'd with: HMAC-SHA256 of a purpose label under the
/// 32 bytes of `BERTH_SECRET_KEY`.
#[derive(Clone)]
pub struct GrantKey([u8; 32]);

impl fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("GrantKey(..)")
    }
}

impl GrantKey {
    /// From `BERTH_SECRET_KEY` (base64 of 32 bytes).
    pub fn from_secret_key(base64: &str) -> Result<Self, GrantError> {
        let secret = STANDARD
            .decode(base64.trim())
            .map_err(|_| GrantError::BadKey)?;
        if secret.len() != 32 {
            return Err(GrantError::BadKey);
        }
        let mut mac = HmacSha256::new_from_slice(&secret).expect("HMAC takes keys of any length");
        mac.update(KEY_PURPOSE);
        Ok(Self(mac.finalize().into_bytes().into()))
    }

    fn mac(&self, access: Access, tenant: &str, expires_at: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(format!("{GRANT_LABEL}\n{access}\n{tenant}\n{expires_at}").as_bytes());
        mac
    }

    /// The credentials of a grant of `access` to `tenant` until `expires_at`
    /// (unix seconds).
    pub fn mint(&self, tenant: &str, access: Access, expires_at: i64) -> Credentials {
        let tag = self.mac(access, tenant, expires_at).finalize().into_bytes();
        Credentials {
            username: format!("{access}.{tenant}"),
            password: format!("{expires_at}.{}", URL_SAFE_NO_PAD.encode(tag)),
        }
    }

    /// The grant `username`/`password` carry, if this key made it and it has
    /// not expired at `now` (unix seconds).
    pub fn verify(&self, username: &str, password: &str, now: i64) -> Result<Grant, GrantError> {
        let (access, tenant) = username.split_once('.').ok_or(GrantError::Malformed)?;
        let access = Access::parse(access).ok_or(GrantError::Malformed)?;
        let (expires_at, tag) = password.split_once('.').ok_or(GrantError::Malformed)?;
        let expires_at: i64 = expires_at.parse().map_err(|_| GrantError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| GrantError::Malformed)?;
        if tenant.is_empty() {
            return Err(GrantError::Malformed);
        }
        self.mac(access, tenant, expires_at)
            .verify_slice(&tag)
            .map_err(|_| GrantError::Forged)?;
        if expires_at <= now {
            return Err(GrantError::Expired);
        }
        Ok(Grant {
            tenant: tenant.to_owned(),
            access,
            expires_at,
        })
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// [`RegistryCredentials`] that mint grants, each living for its access's
/// time from the moment it is minted. Each use picks its own lifetimes: a
/// build's push grant about as long as the build may take, an engine pull
/// a few minutes, a Kubernetes image pull secret weeks (kubelet pulls
/// whenever a pod lands on a node without the image).
#[derive(Debug, Clone)]
pub struct Grants {
    key: GrantKey,
    push_ttl: Duration,
    pull_ttl: Duration,
}

impl Grants {
    /// Push and pull grants that live 15 minutes; see [`Grants::push_for`]
    /// and [`Grants::pull_for`].
    pub fn new(key: GrantKey) -> Self {
        Self {
            key,
            push_ttl: Duration::from_secs(15 * 60),
            pull_ttl: Duration::from_secs(15 * 60),
        }
    }

    /// From `BERTH_SECRET_KEY`.
    pub fn from_secret_key(base64: &str) -> Result<Self, GrantError> {
        GrantKey::from_secret_key(base64).map(Self::new)
    }

    pub fn push_for(mut self, ttl: Duration) -> Self {
        self.push_ttl = ttl;
        self
    }

    pub fn pull_for(mut self, ttl: Duration) -> Self {
        self.pull_ttl = ttl;
        self
    }

    pub fn ttl(&self, access: Access) -> Duration {
        match access {
            Access::Push => self.push_ttl,
            Access::Pull => self.pull_ttl,
        }
    }

    pub fn key(&self) -> &GrantKey {
        &self.key
    }
}

impl RegistryCredentials for Grants {
    fn for_tenant(&self, tenant: &str, access: Access) -> Credentials {
        let ttl = i64::try_from(self.ttl(access).as_secs()).unwrap_or(i64::MAX);
        self.key
            .mint(tenant, access, unix_now().saturating_add(ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> GrantKey {
        GrantKey::from_secret_key(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn a_minted_grant_verifies_until_it_expires() {
        let credentials = key().mint("acme", Access::Push, 1_000);
        assert_eq!(credentials.username, "push.acme");
        assert!(credentials.password.starts_with("1000."));
        assert_eq!(
            key().verify(&credentials.username, &credentials.password, 999),
            Ok(Grant {
                tenant: "acme".into(),
                access: Access::Push,
                expires_at: 1_000
            })
        );
        assert_eq!(
            key().verify(&credentials.username, &credentials.password, 1_000),
            Err(GrantError::Expired)
        );
        assert!(!format!("{credentials:?}").contains(&credentials.password));
    }

    #[test]
    fn no_part_of_a_grant_can_be_changed() {
        let grant = key().mint("acme", Access::Pull, 5_000);
        let tag = grant.password.split_once('.').unwrap().1;
        for (username, password) in [
            ("push.acme".to_owned(), grant.password.clone()),
            ("pull.other".to_owned(), grant.password.clone()),
            ("pull.acme".to_owned(), format!("9000.{tag}")),
        ] {
            assert_eq!(
                key().verify(&username, &password, 0),
                Err(GrantError::Forged),
                "{username} {password}"
            );
        }
        let other = GrantKey::from_secret_key(&STANDARD.encode([8u8; 32])).unwrap();
        assert_eq!(
            other.verify(&grant.username, &grant.password, 0),
            Err(GrantError::Forged)
        );
        for (username, password) in [
            ("berth", "a password"),
            ("delete.acme", grant.password.as_str()),
            ("pull.", grant.password.as_str()),
            ("pull.acme", "5000"),
            ("pull.acme", "soon.abc"),
            ("pull.acme", "5000.***"),
        ] {
            assert_eq!(
                key().verify(username, password, 0),
                Err(GrantError::Malformed),
                "{username} {password}"
            );
        }
    }

    #[test]
    fn the_key_is_derived_for_this_purpose_only() {
        let raw = [7u8; 32];
        // A MAC under the secret key itself is not a grant.
        let mut mac = HmacSha256::new_from_slice(&raw).unwrap();
        mac.update(format!("{GRANT_LABEL}\npush\nacme\n5000").as_bytes());
        let password = format!(
            "5000.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(
            key().verify("push.acme", &password, 0),
            Err(GrantError::Forged)
        );
        assert_eq!(
            GrantKey::from_secret_key("short").unwrap_err(),
            GrantError::BadKey
        );
    }

    #[test]
    fn grants_live_as_long_as_their_access_says() {
        let grants = Grants::new(key())
            .push_for(Duration::from_secs(60))
            .pull_for(Duration::from_secs(3600));
        let now = unix_now();
        let push = grants.for_tenant("acme", Access::Push);
        let grant = key().verify(&push.username, &push.password, now).unwrap();
        assert!((now + 59..=now + 61).contains(&grant.expires_at));
        let pull = grants.for_tenant("acme", Access::Pull);
        let grant = key().verify(&pull.username, &pull.password, now).unwrap();
        assert!((now + 3599..=now + 3601).contains(&grant.expires_at));
        assert_eq!(
            Credentials {
                username: "u".into(),
                password: "p".into()
            }
            .basic_auth(),
            "dTpw"
        );
    }
}
