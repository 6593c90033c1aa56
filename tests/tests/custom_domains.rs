//! Custom domains end to end (issue 13): a user adds a domain, creates the
//! TXT record berth asks for, and the app answers on it over HTTPS with a
//! certificate from a real ACME server (Pebble, with its DNS server
//! pebble-challtestsrv), checked against Pebble's root from its management
//! API. Plain HTTP redirects to HTTPS; another tenant cannot claim the
//! name; removing it stops the router answering for it.

use anyhow::{ensure, Context, Result};
use berth_common::testing::acme::{TestAcme, TestDns};
use berth_tests::api::fetch_body;
use berth_tests::flow::{deploy_live, endpoint, signed_in};
use berth_tests::{AppRepo, Platform};
use reqwest::Method;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const DOMAIN: &str = "shop.example.test";

/// A client that trusts only `root` and reaches `DOMAIN` at the router.
fn trusting(root: &str, router: SocketAddr) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes())?)
        .resolve(DOMAIN, router)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_custom_domain_is_served_over_https_once_its_txt_record_is_seen() -> Result<()> {
    let dns = TestDns::start().await;
    let acme = TestAcme::new();
    let platform = Platform::start_with_https(&[
        ("BERTH_ACME_DIRECTORY", acme.directory.clone()),
        (
            "BERTH_ACME_TRUSTED_ROOTS",
            acme.trusted_roots.display().to_string(),
        ),
        ("BERTH_ACME_EMAIL", "ops@example.test".into()),
        ("BERTH_DNS_RESOLVER", dns.address.to_string()),
        ("BERTH_DOMAIN_CHECK_INTERVAL_SECS", "1".into()),
    ])
    .await?;
    let (http_port, tls_port) = (platform.router.port, platform.router.tls_port);
    let acme = acme.run(&dns, http_port, tls_port).await;
    let root = acme.root().await;
    let https = trusting(&root, SocketAddr::from(([127, 0, 0, 1], tls_port)))?;
    let url = format!("https://{DOMAIN}:{tls_port}/");

    let client = signed_in(&platform, "domains").await?;
    let repo = AppRepo::python("v1")?;
    let app = client
        .create_app(json!({"name": "shop", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let app_id = app["id"].as_str().context("app id")?.to_owned();
    let live = deploy_live(&client, &platform, &app_id).await?;
    assert_eq!(fetch_body(&endpoint(&live)?).await?, "hello v1");
    ensure!(
        https.get(&url).send().await.is_err(),
        "no certificate before the domain exists"
    );

    let added_at = Instant::now();
    let domain = client
        .expect(
            Method::POST,
            &format!("/apps/{app_id}/domains"),
            Some(json!({"hostname": DOMAIN})),
            201,
        )
        .await?;
    let txt = domain["dns_records"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == "TXT")
        .context("a TXT record to create")?;
    dns.set_txt(
        txt["name"].as_str().context("name")?,
        txt["value"].as_str().context("value")?,
    )
    .await;

    // Nobody presses "verify": berth's own check finds the record, the
    // router gets the route and a certificate.
    let deadline = added_at + Duration::from_secs(90);
    let body = loop {
        match https.get(&url).send().await {
            Ok(response) if response.status() == 200 => break response.text().await?,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            outcome => anyhow::bail!(
                "{DOMAIN} was not served over HTTPS within 90 s: {outcome:?}\n{}",
                platform.all_output()
            ),
        }
    };
    println!(
        "from adding {DOMAIN} to serving it over HTTPS (Pebble): {:.1} s",
        added_at.elapsed().as_secs_f64()
    );
    assert_eq!(body, "hello v1");

    // The API tells the user the certificate is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let shown = loop {
        let shown = client
            .get(&format!("/apps/{app_id}/domains/{DOMAIN}"))
            .await?;
        if shown["certificate"]["state"] == "issued" || Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(shown["status"], "verified", "{shown}");
    assert_eq!(shown["certificate"]["state"], "issued", "{shown}");
    let issuer = shown["certificate"]["issuer"].as_str().unwrap_or_default();
    assert!(issuer.contains("Pebble"), "{issuer}");

    // Plain HTTP redirects to HTTPS, path and query kept.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .get(format!("http://127.0.0.1:{http_port}/cart?item=1"))
        .header(reqwest::header::HOST, DOMAIN)
        .send()
        .await?;
    assert_eq!(plain.status(), 308);
    assert_eq!(
        plain.headers()[reqwest::header::LOCATION],
        format!("https://{DOMAIN}:{tls_port}/cart?item=1").as_str()
    );

    // Each request is in the app's log, from the router's access log.
    let requested = |entries: &[Value]| {
        entries.iter().any(|entry| {
            entry["source"] == "router"
                && entry["line"]
                    .as_str()
                    .is_some_and(|line| line.starts_with("GET / → 200 in "))
        })
    };
    let entries = client
        .log_socket(&app_id, 0, Duration::from_secs(30), requested)
        .await?;
    ensure!(
        requested(&entries),
        "no router line in the app's log: {entries:?}"
    );

    // A name berth has not approved gets no certificate at all.
    let stranger = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .resolve(
            "stranger.example.test",
            SocketAddr::from(([127, 0, 0, 1], tls_port)),
        )
        .build()?
        .get(format!("https://stranger.example.test:{tls_port}/"))
        .send()
        .await;
    assert!(
        stranger.is_err(),
        "a stranger's name got a TLS session: {stranger:?}"
    );

    // Another tenant cannot claim the name.
    let mallory = signed_in(&platform, "mallory").await?;
    let theirs = mallory
        .create_app(json!({"name": "evil", "repo_url": repo.url(), "port": 8000}))
        .await?;
    let theirs = theirs["id"].as_str().context("id")?;
    let (status, problem) = mallory
        .call(
            Method::POST,
            &format!("/apps/{theirs}/domains"),
            Some(json!({"hostname": DOMAIN})),
        )
        .await?;
    assert_eq!(status, 409, "{problem}");

    // Removed, the router stops answering for it.
    client
        .expect(
            Method::DELETE,
            &format!("/apps/{app_id}/domains/{DOMAIN}"),
            None,
            204,
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = https.get(&url).send().await.map(|r| r.status().as_u16());
        if matches!(status, Ok(404)) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "{DOMAIN} still answered after removal: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let listed: Value = client.get(&format!("/apps/{app_id}/domains")).await?;
    assert_eq!(listed, json!([]));
    Ok(())
}
