//! GitHub's webhook signature: `X-Hub-Signature-256: sha256=<hex>`, the
//! HMAC-SHA256 of the raw request body keyed with the webhook's secret.
//! Checked in constant time before anything in the body is trusted.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const HEADER: &str = "x-hub-signature-256";

fn mac(secret: &[u8], body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    mac
}

/// The header value GitHub sends for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, body).finalize().into_bytes())
    )
}

/// Whether `header` is `body`'s signature under `secret`. The digests are
/// compared in constant time (`verify_slice`); a malformed header is false.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(digest) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(digest) = hex::decode(digest) else {
        return false;
    };
    mac(secret, body).verify_slice(&digest).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in GitHub's "Validating webhook deliveries".
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_test_vector_verifies() {
        assert_eq!(sign(SECRET, BODY), SIGNATURE);
        assert!(verify(SECRET, BODY, SIGNATURE));
        assert!(verify(
            SECRET,
            BODY,
            &SIGNATURE.to_uppercase().replace("SHA256=", "sha256=")
        ));
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(!verify(b"another secret", BODY, SIGNATURE));
        assert!(!verify(SECRET, b"Hello, World?", SIGNATURE));
        // The legacy SHA-1 header's format, a bare digest, truncated or junk.
        assert!(!verify(
            SECRET,
            BODY,
            &SIGNATURE.replace("sha256=", "sha1=")
        ));
        assert!(!verify(
            SECRET,
            BODY,
            SIGNATURE.trim_start_matches("sha256=")
        ));
        assert!(!verify(SECRET, BODY, &SIGNATURE[..SIGNATURE.len() - 2]));
        assert!(!verify(SECRET, BODY, "sha256=zz"));
        assert!(!verify(SECRET, BODY, "sha256="));
        assert!(!verify(SECRET, BODY, ""));
    }
}
