use super::*;
use crate::testing::registry::{SigningFiles, ISSUER, SERVICE};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::Arc;
use tower::ServiceExt;

const SECRET: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn setup() -> (tempfile::TempDir, SigningFiles, TokenIssuer) {
    let dir = tempfile::tempdir().unwrap();
    let files = SigningFiles::generate(dir.path());
    let issuer = files.issuer(SECRET);
    (dir, files, issuer)
}

fn decode(files: &SigningFiles, token: &str) -> (serde_json::Value, Claims) {
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let key = DecodingKey::from_ec_pem(&std::fs::read(&files.certificate).unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[SERVICE]);
    validation.set_issuer(&[ISSUER]);
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .unwrap()
        .claims;
    (header, claims)
}

fn grant(access: Access, tenant: &str, expires_at: i64) -> Credentials {
    GrantKey::from_secret_key(SECRET)
        .unwrap()
        .mint(tenant, access, expires_at)
}

#[test]
fn a_token_carries_the_certificate_and_only_the_granted_access() {
    let (_dir, files, issuer) = setup();
    let now = unix_now();
    let push = grant(Access::Push, "a", now + 3600);
    let scopes = Scope::parse_all(["repository:a/web:pull,push", "repository:b/web:pull"]).unwrap();
    let (response, claims) = issuer
        .issue(&push.username, &push.password, Some(SERVICE), &scopes, now)
        .unwrap();
    assert_eq!(response.token, response.access_token);
    assert_eq!(response.expires_in, 300);
    let (header, decoded) = decode(&files, &response.token);
    assert_eq!(decoded, claims);
    assert_eq!(header["alg"], "ES256");
    // Distribution finds the key through x5c, checked against its rootcertbundle.
    let pem = std::fs::read_to_string(&files.certificate).unwrap();
    let der: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(header["x5c"], serde_json::json!([der]));
    assert!(header.get("jwk").is_none());
    assert_eq!(decoded.sub, "push.a");
    assert_eq!(decoded.aud, SERVICE);
    assert_eq!(decoded.iss, ISSUER);
    assert_eq!(decoded.exp, now + 300);
    assert_eq!(
        decoded.access,
        [ResourceActions {
            kind: "repository".into(),
            name: "a/web".into(),
            actions: vec!["pull".into(), "push".into()]
        }]
    );
    assert!(!STANDARD.decode(&der).unwrap().is_empty());
}

#[test]
fn a_token_never_outlives_its_grant() {
    let (_dir, files, issuer) = setup();
    let now = unix_now();
    let pull = grant(Access::Pull, "a", now + 20);
    let (response, _) = issuer
        .issue(&pull.username, &pull.password, None, &[], now)
        .unwrap();
    assert_eq!(response.expires_in, 20);
    assert_eq!(decode(&files, &response.token).1.exp, now + 20);
}

#[test]
fn forged_expired_and_foreign_requests_are_refused() {
    let (_dir, _files, issuer) = setup();
    let now = unix_now();
    let good = grant(Access::Push, "a", now + 60);
    let other_key = GrantKey::from_secret_key(&STANDARD.encode([9u8; 32]))
        .unwrap()
        .mint("a", Access::Push, now + 60);
    let expired = grant(Access::Push, "a", now - 1);
    for (credentials, expected) in [
        (&other_key, GrantError::Forged),
        (&expired, GrantError::Expired),
    ] {
        let error = issuer
            .issue(&credentials.username, &credentials.password, None, &[], now)
            .unwrap_err();
        assert!(
            matches!(&error, TokenError::Grant(e) if *e == expected),
            "{error}"
        );
    }
    let error = issuer
        .issue(&good.username, &good.password, Some("elsewhere"), &[], now)
        .unwrap_err();
    assert!(matches!(error, TokenError::WrongService { .. }), "{error}");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let one = SigningFiles::generate(&dir.path().join("x").tap_mkdir());
    let two = SigningFiles::generate(&dir.path().join("y").tap_mkdir());
    let error = TokenIssuer::from_files(
        GrantKey::from_secret_key(SECRET).unwrap(),
        &one.key,
        &two.certificate,
        one.issuer(SECRET).settings().clone(),
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("does not belong to the certificate"),
        "{error}"
    );
    let error = TokenIssuer::from_files(
        GrantKey::from_secret_key(SECRET).unwrap(),
        &one.certificate,
        &one.certificate,
        one.issuer(SECRET).settings().clone(),
    )
    .unwrap_err();
    assert!(error.to_string().contains("PKCS#8"), "{error}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

async fn get(
    app: axum::Router,
    uri: &str,
    auth: Option<&Credentials>,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let mut request = Request::get(uri);
    if let Some(credentials) = auth {
        request = request.header(
            "authorization",
            format!("Basic {}", credentials.basic_auth()),
        );
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn the_endpoint_speaks_dockers_token_protocol() {
    let (_dir, files, issuer) = setup();
    let app = router(Arc::new(issuer));
    let push = grant(Access::Push, "a", unix_now() + 600);
    let (status, headers, body) = get(
        app.clone(),
        "/registry/token?service=berth-registry&scope=repository%3Aa%2Fweb%3Apush%2Cpull&scope=repository%3Acache%2Fa%3Apull%2Cpush%20repository%3Acache%2Fb%3Apush&account=push.a",
        Some(&push),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token"], body["access_token"]);
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let (_, claims) = decode(&files, body["token"].as_str().unwrap());
    let names: Vec<&str> = claims.access.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a/web", "cache/a"]);

    let (status, headers, body) =
        get(app.clone(), "/registry/token?service=berth-registry", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        headers["www-authenticate"],
        "Basic realm=\"berth registry\""
    );
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["type"], "https://berth.dev/problems/unauthorized");

    let forged = Credentials {
        username: "push.b".into(),
        password: push.password.clone(),
    };
    let (status, _, body) = get(app.clone(), "/registry/token", Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "the registry grant is not authentic");

    let (status, _, body) = get(app, "/registry/token?scope=nonsense", Some(&push)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["detail"], "`nonsense` is not a scope");
}
