//! Access tokens (JWT, HS256, 15 minutes) and refresh tokens (32 random
//! bytes, stored only as their SHA-256).

use crate::config::MIN_JWT_SECRET_BYTES;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;
use uuid::Uuid;

pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
const ISSUER: &str = "berth";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    /// The user's session epoch when the token was issued; the token dies
    /// when the epoch moves on (password change, account deletion).
    #[serde(default)]
    pub epoch: i32,
    /// The session (refresh token family) the token was issued to, so the
    /// session list can say which one is the caller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// What a valid access token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub user_id: Uuid,
    pub epoch: i32,
    pub session: Option<Uuid>,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_JWT_SECRET_BYTES} bytes")]
pub struct WeakSecret;

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl: ACCESS_TOKEN_TTL,
        })
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        epoch: i32,
        session: Uuid,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            iss: ISSUER.into(),
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
            epoch,
            sid: Some(session),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// What a valid, unexpired token says.
    pub fn verify(&self, token: &str) -> Option<Verified> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| Verified {
                user_id: data.claims.sub,
                epoch: data.claims.epoch,
                session: data.claims.sid,
            })
    }
}

/// A new opaque secret (refresh token, WebSocket ticket): 32 random bytes,
/// base64url without padding.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    B64URL.encode(bytes)
}

/// What is stored instead of an opaque secret.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_other_keys_are_refused() {
        let keys = TokenKeys::new(&[7u8; 32]).unwrap();
        let user = Uuid::now_v7();
        let session = Uuid::now_v7();
        let token = keys.issue(user, 3, session).unwrap();
        let verified = Verified {
            user_id: user,
            epoch: 3,
            session: Some(session),
        };
        assert_eq!(keys.verify(&token), Some(verified));
        let other = TokenKeys::new(&[8u8; 32]).unwrap();
        assert_eq!(other.verify(&token), None);
        assert_eq!(keys.verify("garbage"), None);
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = TokenKeys::new(&[7u8; 32]).unwrap();
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::now_v7(),
            iss: ISSUER.into(),
            iat: now - 120,
            exp: now - 60,
            epoch: 0,
            sid: None,
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token), None);
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert!(TokenKeys::new(b"short").is_err());
    }

    #[test]
    fn random_tokens_are_32_bytes_and_hashed() {
        let token = random_token();
        assert_eq!(B64URL.decode(&token).unwrap().len(), 32);
        assert_eq!(hash_token(&token).len(), 32);
        assert_ne!(random_token(), token);
    }
}
