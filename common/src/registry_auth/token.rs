//! Registry tokens: JWTs signed with ES256 whose `access` claim the registry
//! enforces. Distribution 2.8 (`registry/auth/token`) checks `iss` against
//! its `issuer`, `aud` (a string) against its `service`, `exp`/`nbf` with a
//! minute of leeway, and finds the signing key through the header's `x5c`
//! chain, which must verify against its `rootcertbundle`. berth puts its
//! (self-signed) certificate there and sends it as the one-element chain.

use super::grant::{GrantError, GrantKey};
use super::scope::{RepositoryLayout, ResourceActions, Scope};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// How the token service names itself and what its tokens cover.
#[derive(Debug, Clone)]
pub struct IssuerSettings {
    /// The registry's `auth.token.issuer`.
    pub issuer: String,
    /// The registry's `auth.token.service`: the tokens' audience.
    pub service: String,
    pub layout: RepositoryLayout,
    /// How long a token lives; never past its grant's expiry.
    pub token_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The signing key or the certificate cannot be used.
    #[error("registry token signing: {0}")]
    Setup(String),
    #[error("{0}")]
    Grant(#[from] GrantError),
    #[error("no credentials: the registry token service takes a berth registry grant as basic credentials")]
    NoCredentials,
    #[error("this token service issues tokens for `{ours}`, not `{asked}`")]
    WrongService { ours: String, asked: String },
    #[error("{0}")]
    BadScope(String),
}

/// The claims Distribution reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub access: Vec<ResourceActions>,
}

/// A token as the token endpoint answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: String,
    /// The same token, for OAuth2 clients.
    pub access_token: String,
    /// Seconds.
    pub expires_in: i64,
    pub issued_at: DateTime<Utc>,
}

/// Turns grants into registry tokens.
pub struct TokenIssuer {
    grants: GrantKey,
    signing: EncodingKey,
    /// base64 DER of the certificate, the header's `x5c`.
    chain: Vec<String>,
    settings: IssuerSettings,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")?;
    let body = &pem[start + "-----BEGIN CERTIFICATE-----".len()..];
    let body = &body[..body.find("-----END CERTIFICATE-----")?];
    let text: String = body.split_whitespace().collect();
    STANDARD.decode(text).ok()
}

impl TokenIssuer {
    /// From the PKCS#8 PEM of a P-256 key and the PEM of its certificate (the
    /// one in the registry's `rootcertbundle`). A key that does not belong to
    /// the certificate is refused here rather than by every registry call.
    pub fn new(
        grants: GrantKey,
        private_key_pem: &[u8],
        certificate_pem: &[u8],
        settings: IssuerSettings,
    ) -> Result<Self, TokenError> {
        let signing = EncodingKey::from_ec_pem(private_key_pem).map_err(|e| {
            TokenError::Setup(format!(
                "the key is not a PKCS#8 PEM EC (P-256) private key: {e}"
            ))
        })?;
        let certificate = std::str::from_utf8(certificate_pem)
            .ok()
            .and_then(certificate_der)
            .ok_or_else(|| TokenError::Setup("the certificate is not PEM".into()))?;
        let verifying = DecodingKey::from_ec_pem(certificate_pem).map_err(|e| {
            TokenError::Setup(format!("the certificate holds no EC public key: {e}"))
        })?;
        let issuer = Self {
            grants,
            signing,
            chain: vec![STANDARD.encode(certificate)],
            settings,
        };
        let probe = issuer.sign(&issuer.claims("probe", Vec::new(), 0, i64::MAX))?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[&issuer.settings.service]);
        validation.validate_exp = false;
        jsonwebtoken::decode::<Claims>(&probe, &verifying, &validation).map_err(|_| {
            TokenError::Setup("the private key does not belong to the certificate".into())
        })?;
        Ok(issuer)
    }

    /// Like [`TokenIssuer::new`], reading the two files.
    pub fn from_files(
        grants: GrantKey,
        private_key: &Path,
        certificate: &Path,
        settings: IssuerSettings,
    ) -> Result<Self, TokenError> {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| TokenError::Setup(format!("cannot read {}: {e}", path.display())))
        };
        Self::new(grants, &read(private_key)?, &read(certificate)?, settings)
    }

    pub fn settings(&self) -> &IssuerSettings {
        &self.settings
    }

    fn claims(&self, subject: &str, access: Vec<ResourceActions>, now: i64, exp: i64) -> Claims {
        Claims {
            iss: self.settings.issuer.clone(),
            sub: subject.to_owned(),
            aud: self.settings.service.clone(),
            exp,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access,
        }
    }

    fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::ES256);
        header.x5c = Some(self.chain.clone());
        jsonwebtoken::encode(&header, claims, &self.signing)
            .map_err(|e| TokenError::Setup(format!("signing failed: {e}")))
    }

    /// A token for berth's own retention to delete `repository`'s
    /// manifests: no grant can ask for `delete`, so only a process holding
    /// the signing key (the backend) has one.
    pub fn for_pruning(&self, repository: &str, now: i64) -> Result<String, TokenError> {
        let access = vec![ResourceActions {
            kind: "repository".to_owned(),
            name: repository.to_owned(),
            actions: vec!["pull".to_owned(), "delete".to_owned()],
        }];
        let ttl = i64::try_from(self.settings.token_ttl.as_secs()).unwrap_or(i64::MAX);
        self.sign(&self.claims("berth-retention", access, now, now.saturating_add(ttl)))
    }

    /// A token for the grant `username`/`password` present, holding what
    /// `scopes` ask that the grant allows (possibly nothing: the registry
    /// then refuses the request). `now` is unix seconds.
    pub fn issue(
        &self,
        username: &str,
        password: &str,
        service: Option<&str>,
        scopes: &[Scope],
        now: i64,
    ) -> Result<(TokenResponse, Claims), TokenError> {
        if let Some(asked) = service.filter(|s| *s != self.settings.service) {
            return Err(TokenError::WrongService {
                ours: self.settings.service.clone(),
                asked: asked.to_owned(),
            });
        }
        let grant = self.grants.verify(username, password, now)?;
        let access = self.settings.layout.access(&grant, scopes);
        let ttl = i64::try_from(self.settings.token_ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now.saturating_add(ttl).min(grant.expires_at);
        let claims = self.claims(username, access, now, exp);
        let token = self.sign(&claims)?;
        let issued_at = DateTime::from_timestamp(now, 0).unwrap_or_default();
        Ok((
            TokenResponse {
                access_token: token.clone(),
                token,
                expires_in: exp - now,
                issued_at,
            },
            claims,
        ))
    }
}
