//! Secrets in transit and at rest: AES-256-GCM with a key every berth
//! process reads from its environment. Env vars and Git tokens cross the
//! broker only sealed, so a queue dump or a dead-letter queue never shows them.
//!
//! Every value is sealed for a [`Binding`] (its owner and purpose, as the
//! associated data), and opens only for that binding: a blob copied to
//! another app, user or field does not open there.

use crate::binding::Binding;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The format of values sealed for a binding (`"v": 1`). Values without a
/// `v` were sealed by berth before bindings existed, with no associated
/// data; they are refused, except by [`SecretKey::open_legacy`].
pub const BOUND_FORMAT: u8 = 1;

/// A 256-bit key, written as 44 characters of base64.
#[derive(Clone)]
pub struct SecretKey(Aes256Gcm);

#[derive(Debug, thiserror::Error)]
pub enum SealedError {
    #[error("the secret key must be 32 bytes encoded as base64")]
    BadKey,
    #[error("the sealed value is not valid base64")]
    BadEncoding,
    #[error("the sealed value does not open with this key for this owner and purpose (it was sealed for another app, user or field, changed, or sealed with another BERTH_SECRET_KEY)")]
    Tampered,
    #[error("the sealed value is from an older berth that did not bind it to its owner; set it again (the backend re-seals stored values when it starts)")]
    Unbound,
    #[error("the sealed value has format {0}, which this berth does not know")]
    UnknownFormat(u8),
}

/// Ciphertext and nonce, both base64, and the format.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// [`BOUND_FORMAT`]; 0 (absent) for values sealed without a binding.
    #[serde(rename = "v", default, skip_serializing_if = "is_legacy")]
    pub format: u8,
    pub nonce: String,
    pub ciphertext: String,
}

fn is_legacy(format: &u8) -> bool {
    *format == 0
}

impl Sealed {
    /// Sealed by a berth before bindings: to be re-sealed, never opened as is.
    pub fn is_legacy(&self) -> bool {
        is_legacy(&self.format)
    }
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

/// The associated data of a bound value: the format, then the binding, so
/// that a value cannot be passed off as another format either.
fn associated_data(binding: &Binding) -> Vec<u8> {
    let mut aad = Vec::with_capacity(binding.as_bytes().len() + 1);
    aad.push(BOUND_FORMAT);
    aad.extend_from_slice(binding.as_bytes());
    aad
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

    /// Seals `plaintext` so that it opens only for `binding`.
    pub fn seal(&self, binding: &Binding, plaintext: &[u8]) -> Sealed {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = associated_data(binding);
        let ciphertext = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        Sealed {
            format: BOUND_FORMAT,
            nonce: B64.encode(nonce),
            ciphertext: B64.encode(ciphertext),
        }
    }

    /// Opens a value sealed for `binding`; a value sealed for anything
    /// else, or without a binding, is refused.
    pub fn open(&self, binding: &Binding, sealed: &Sealed) -> Result<Vec<u8>, SealedError> {
        match sealed.format {
            BOUND_FORMAT => {}
            0 => return Err(SealedError::Unbound),
            other => return Err(SealedError::UnknownFormat(other)),
        }
        let (nonce, ciphertext) = decode(sealed)?;
        self.0
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: &associated_data(binding),
                },
            )
            .map_err(|_| SealedError::Tampered)
    }

    /// Opens a value sealed before bindings existed, to seal it again for
    /// its binding. Only the backend's re-sealing at start calls this.
    pub fn open_legacy(&self, sealed: &Sealed) -> Result<Vec<u8>, SealedError> {
        if !sealed.is_legacy() {
            return Err(SealedError::UnknownFormat(sealed.format));
        }
        let (nonce, ciphertext) = decode(sealed)?;
        self.0
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_ref())
            .map_err(|_| SealedError::Tampered)
    }

    pub fn seal_json<T: Serialize>(&self, binding: &Binding, value: &T) -> Sealed {
        self.seal(
            binding,
            &serde_json::to_vec(value).expect("serializable value"),
        )
    }

    pub fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        binding: &Binding,
        sealed: &Sealed,
    ) -> Result<T, SealedError> {
        serde_json::from_slice(&self.open(binding, sealed)?).map_err(|_| SealedError::Tampered)
    }

    /// A legacy value sealed again for `binding`; bound values as they are.
    pub fn rebind(&self, binding: &Binding, sealed: &Sealed) -> Result<Sealed, SealedError> {
        if !sealed.is_legacy() {
            // Proves it is already bound to this binding, not just marked so.
            self.open(binding, sealed)?;
            return Ok(sealed.clone());
        }
        Ok(self.seal(binding, &self.open_legacy(sealed)?))
    }
}

fn decode(sealed: &Sealed) -> Result<(Vec<u8>, Vec<u8>), SealedError> {
    let nonce = B64
        .decode(&sealed.nonce)
        .map_err(|_| SealedError::BadEncoding)?;
    let ciphertext = B64
        .decode(&sealed.ciphertext)
        .map_err(|_| SealedError::BadEncoding)?;
    if nonce.len() != 12 {
        return Err(SealedError::BadEncoding);
    }
    Ok((nonce, ciphertext))
}

#[cfg(test)]
#[path = "sealed_tests.rs"]
mod tests;
