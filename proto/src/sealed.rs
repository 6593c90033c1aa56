//! Secrets in transit and at rest: AES-256-GCM with a key every berth
//! process reads from its environment. Env vars and Git tokens cross the
//! broker only sealed, so a queue dump or a dead-letter queue never shows them.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A 256-bit key, written as 44 characters of base64.
#[derive(Clone)]
pub struct SecretKey(Aes256Gcm);

#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    #[error("the secret key must be 32 bytes encoded as base64")]
    BadKey,
    #[error("the sealed value is not valid base64")]
    BadEncoding,
    #[error("the sealed value cannot be opened with this key")]
    Tampered,
}

/// Ciphertext and nonce, both base64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: String,
    pub ciphertext: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(..)")
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_base64(encoded: &str) -> Result<Self, SealedError> {
        let bytes = B64
            .decode(encoded.trim())
            .map_err(|_| SealedError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SealedError::BadKey);
        }
        Ok(Self(
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| SealedError::BadKey)?,
        ))
    }

    /// A fresh random key in its base64 form, for setup scripts and tests.
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        B64.encode(bytes)
    }

    pub fn seal(&self, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .0
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        Sealed {
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        }
    }

    pub fn open(&self, sealed: &Sealed) -> Result<Vec<u8>, SealedError> {
        let nonce = B64
            .decode(&sealed.nonce)
            .map_err(|_| SealedError::BadEncoding)?;
        let ciphertext = B64
            .decode(&sealed.ciphertext)
            .map_err(|_| SealedError::BadEncoding)?;
        if nonce.len() != 12 {
            return Err(SealedError::BadEncoding);
        }
        self.0
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_ref())
            .map_err(|_| SealedError::Tampered)
    }

    pub fn seal_json<T: Serialize>(&self, value: &T) -> Sealed {
        self.seal(&serde_json::to_vec(value).expect("serializable value"))
    }

    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        sealed: &Sealed,
    ) -> Result<T, SealedError> {
        serde_json::from_slice(&self.open(sealed)?).map_err(|_| SealedError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_hides_the_plaintext() {
        let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let sealed = key.seal(b"DATABASE_URL=postgres://secret");
        assert!(!sealed.ciphertext.contains("secret"));
        assert_eq!(
            key.open(&sealed).unwrap(),
            b"DATABASE_URL=postgres://secret"
        );
        assert_eq!(format!("{sealed:?}"), "Sealed(..)");
    }

    #[test]
    fn another_key_or_a_changed_byte_is_refused() {
        let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let other = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let mut sealed = key.seal(b"x");
        assert!(matches!(other.open(&sealed), Err(SealedError::Tampered)));
        sealed.ciphertext = B64.encode(b"garbage-garbage-garbage");
        assert!(key.open(&sealed).is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(matches!(
            SecretKey::from_base64("c2hvcnQ="),
            Err(SealedError::BadKey)
        ));
    }
}
