//! Property-based tests of the GitHub webhook payload parser: random bytes,
//! random JSON and random push payloads, as JSON or as GitHub's form
//! encoding, through every function that reads a delivery before or after
//! its signature is checked. None may panic.

use super::deliver::Verified;
use super::push::{decide, repo_key, PushEvent, Target};
use super::repo_wide::repository_keys;
use super::{payload_json, DELIVERY_HEADER, EVENT_HEADER};
use axum::http::{header, HeaderMap, HeaderValue};
use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{json, Value};

fn headers(event: &str, form: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(DELIVERY_HEADER, HeaderValue::from_static("d-1"));
    if let Ok(event) = HeaderValue::from_str(event) {
        headers.insert(EVENT_HEADER, event);
    }
    let kind = if form {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn url_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        "(https?|file|ssh)://[a-zA-Z0-9.:@\\[\\]%-]{0,20}(/[a-zA-Z0-9._%-]{0,10}){0,4}/?",
        "/[a-z/.]{0,30}",
    ]
}

fn paths() -> impl Strategy<Value = Option<Vec<String>>> {
    proptest::option::of(prop::collection::vec("[a-z./]{0,20}", 0..6))
}

/// A push payload shaped like GitHub's, with random values in every field.
fn push_payload() -> impl Strategy<Value = Value> {
    (
        prop_oneof!["refs/heads/[a-z/]{0,12}", "refs/tags/.{0,8}", ".*"],
        prop_oneof!["[0-9a-f]{40}", "0{40}", ".*"],
        any::<bool>(),
        prop::collection::vec((paths(), paths(), paths()), 0..25),
        (
            proptest::option::of(url_text()),
            proptest::option::of(url_text()),
            json_value(),
        ),
        proptest::option::of((proptest::option::of(".*"), proptest::option::of(".*"))),
        proptest::option::of(".*"),
    )
        .prop_map(|(git_ref, after, deleted, commits, repo, head, pusher)| {
            let commits: Vec<Value> = commits
                .into_iter()
                .map(|(added, removed, modified)| {
                    json!({"added": added, "removed": removed, "modified": modified})
                })
                .collect();
            json!({
                "ref": git_ref, "after": after, "deleted": deleted, "commits": commits,
                "repository": {"full_name": "o/r", "html_url": repo.0, "clone_url": repo.1,
                               "pushed_at": repo.2},
                "head_commit": head.map(|(id, message)| json!({"id": id, "message": message})),
                "pusher": {"name": pusher}, "sender": {"login": "octocat"},
            })
        })
}

fn form(json: &[u8]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &String::from_utf8_lossy(json))
        .finish()
        .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Unsigned, unverified input: what the repository-wide URL reads to
    /// find the candidate apps before any signature is checked.
    #[test]
    fn any_body_is_read_without_panicking(
        body in prop::collection::vec(any::<u8>(), 0..512),
        event in prop_oneof![Just("push".to_owned()), Just("ping".to_owned()), ".*"],
        is_form in any::<bool>(),
    ) {
        let headers = headers(&event, is_form);
        let _ = repository_keys(&headers, &body);
        let _ = payload_json(&headers, &body);
        let _ = PushEvent::parse(&body);
        let _ = Verified::read(&headers, &body);
    }

    #[test]
    fn any_json_is_read_without_panicking(value in json_value(), is_form in any::<bool>()) {
        let json = serde_json::to_vec(&value).unwrap();
        let body = if is_form { form(&json) } else { json };
        let headers = headers("push", is_form);
        let _ = repository_keys(&headers, &body);
        let _ = Verified::read(&headers, &body);
    }

    /// Push payloads with random values: parsed (or refused with a reason)
    /// the same as JSON or form, and a parsed push is decided for any app
    /// without panicking.
    #[test]
    fn push_payloads_parse_and_decide_without_panicking(
        payload in push_payload(),
        is_form in any::<bool>(),
        repo_url in url_text(),
        branch in "[a-z/]{0,12}",
        subdirectory in proptest::option::of("[a-z./]{0,12}"),
        now in 0i64..7_258_118_400,
    ) {
        let json = serde_json::to_vec(&payload).unwrap();
        let body = if is_form { form(&json) } else { json.clone() };
        let headers = headers("push", is_form);
        let verified = Verified::read(&headers, &body);
        let parsed = PushEvent::parse(&json);
        prop_assert_eq!(verified.is_ok(), parsed.is_ok());
        let after = payload["after"].as_str().unwrap_or_default();
        let sha = after.len() == 40 && after.bytes().all(|b| b.is_ascii_hexdigit());
        prop_assert_eq!(parsed.is_ok(), sha, "{:?}", parsed.as_ref().err());
        let _ = repository_keys(&headers, &body);
        if let Ok(push) = parsed {
            let _ = push.head_message();
            let _ = push.pushed_by();
            let target = Target {
                repo_url: &repo_url,
                branch: &branch,
                subdirectory: subdirectory.as_deref(),
            };
            let now: DateTime<Utc> = DateTime::from_timestamp(now, 0).unwrap();
            let _ = decide(&push, &target, now);
        }
    }

    /// The key two spellings of one repository share: never a panic, and
    /// hosted repositories' keys ignore case, as GitHub does.
    #[test]
    fn repository_keys_ignore_case_for_hosts(url in url_text()) {
        if let Some(key) = repo_key(&url) {
            if !key.starts_with("file://") {
                prop_assert_eq!(key.to_ascii_lowercase(), key.clone());
                prop_assert_eq!(repo_key(&url.to_ascii_uppercase().replacen("HTTP", "http", 1)), Some(key));
            }
        }
    }
}
