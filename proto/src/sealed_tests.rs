use super::*;
use uuid::Uuid;

fn key() -> SecretKey {
    SecretKey::from_base64(&SecretKey::generate_base64()).unwrap()
}

/// What berth sealed before bindings: AES-GCM without associated data.
fn seal_legacy(key: &SecretKey, plaintext: &[u8]) -> Sealed {
    let nonce = [7u8; 12];
    let ciphertext = key.0.encrypt(Nonce::from_slice(&nonce), plaintext).unwrap();
    Sealed {
        format: 0,
        nonce: B64.encode(nonce),
        ciphertext: B64.encode(ciphertext),
    }
}

#[test]
fn seal_then_open_round_trips_and_hides_the_plaintext() {
    let key = key();
    let binding = Binding::app_env("alice", Uuid::now_v7());
    let sealed = key.seal(&binding, b"DATABASE_URL=postgres://secret");
    assert!(!sealed.ciphertext.contains("secret"));
    assert_eq!(
        key.open(&binding, &sealed).unwrap(),
        b"DATABASE_URL=postgres://secret"
    );
    assert_eq!(format!("{sealed:?}"), "Sealed(..)");
    let json = serde_json::to_value(&sealed).unwrap();
    assert_eq!(json["v"], 1, "the format is marked: {json}");
}

#[test]
fn a_value_sealed_for_one_app_does_not_open_for_another() {
    let key = key();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let sealed = key.seal_json(&Binding::app_env("alice", a), &["SECRET=1"]);
    for other in [
        Binding::app_env("alice", b),
        Binding::app_env("mallory", a),
        Binding::build_token("alice", a),
        Binding::webhook_secret(a),
    ] {
        assert!(
            matches!(
                key.open_json::<Vec<String>>(&other, &sealed),
                Err(SealedError::Tampered)
            ),
            "{other:?}"
        );
    }
    let token = key.seal(&Binding::github_token(a), b"ghp_x");
    assert!(key.open(&Binding::github_token(b), &token).is_err());
    assert!(key.open(&Binding::build_token("alice", a), &token).is_err());
}

#[test]
fn another_key_or_a_changed_byte_is_refused() {
    let binding = Binding::webhook_secret(Uuid::now_v7());
    let key = key();
    let mut sealed = key.seal(&binding, b"x");
    assert!(matches!(
        self::key().open(&binding, &sealed),
        Err(SealedError::Tampered)
    ));
    sealed.ciphertext = B64.encode(b"garbage-garbage-garbage");
    assert!(key.open(&binding, &sealed).is_err());
}

#[test]
fn values_sealed_without_a_binding_are_refused_until_rebound() {
    let key = key();
    let binding = Binding::app_env("alice", Uuid::now_v7());
    let legacy = seal_legacy(&key, b"{}");
    let json = serde_json::to_string(&legacy).unwrap();
    assert!(
        !json.contains("\"v\""),
        "legacy rows have no marker: {json}"
    );
    assert!(matches!(
        key.open(&binding, &legacy),
        Err(SealedError::Unbound)
    ));
    // Marking a legacy value as bound does not make it open either.
    let forged = Sealed {
        format: BOUND_FORMAT,
        ..legacy.clone()
    };
    assert!(matches!(
        key.open(&binding, &forged),
        Err(SealedError::Tampered)
    ));

    let rebound = key.rebind(&binding, &legacy).unwrap();
    assert_eq!(key.open(&binding, &rebound).unwrap(), b"{}");
    assert_eq!(key.rebind(&binding, &rebound).unwrap(), rebound);
    let elsewhere = Binding::app_env("alice", Uuid::now_v7());
    assert!(key.rebind(&elsewhere, &rebound).is_err());
    assert!(key.open_legacy(&rebound).is_err());
}

#[test]
fn an_unknown_format_is_named() {
    let key = key();
    let binding = Binding::pkce_verifier(b"h");
    let mut sealed = key.seal(&binding, b"v");
    sealed.format = 9;
    assert_eq!(
        key.open(&binding, &sealed).unwrap_err().to_string(),
        "the sealed value has format 9, which this berth does not know"
    );
}

#[test]
fn short_keys_are_refused() {
    assert!(matches!(
        SecretKey::from_base64("c2hvcnQ="),
        Err(SealedError::BadKey)
    ));
}
