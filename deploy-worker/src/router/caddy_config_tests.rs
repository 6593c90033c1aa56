use super::*;
use crate::router::tls::TlsConfig;

fn app_route(domains: Option<Vec<&str>>) -> AppRoute {
    AppRoute {
        app_id: Uuid::nil(),
        host: "shop.acme.localhost".into(),
        target: Target::Instances(vec!["127.0.0.1:4000".into()]),
        health_check_path: None,
        domains: domains.map(|d| d.into_iter().map(str::to_owned).collect()),
    }
}

fn layout(tls: bool, apps_tls: bool) -> Layout {
    let tls = tls.then(|| {
        TlsConfig {
            router_tls_listen: Some(":8443".into()),
            acme_email: Some("ops@example.org".into()),
            ..TlsConfig::default()
        }
        .resolve(":8080", Some("127.0.0.1:8081"))
        .unwrap()
        .unwrap()
    });
    Layout {
        listen: ":8080".into(),
        console: Some(("berth.example.org".into(), "127.0.0.1:8081".into())),
        tls,
        apps_tls,
        access_log: None,
    }
}

fn one(route: &AppRoute) -> Entries {
    Entries::from([(route.app_id, Entry::of(route, None))])
}

fn routes<'a>(apps: &'a Value, server: &str) -> &'a Vec<Value> {
    apps.pointer(&format!("/http/servers/{server}/routes"))
        .and_then(Value::as_array)
        .unwrap()
}

fn by_id<'a>(routes: &'a [Value], id: &str) -> &'a Value {
    routes
        .iter()
        .find(|r| r["@id"] == id)
        .unwrap_or_else(|| panic!("no route {id}"))
}

#[test]
fn what_is_written_reads_back_the_same_in_every_layout() {
    let written = one(&app_route(Some(vec![
        "shop.example.org",
        "www.shop.example.org",
    ])));
    for (tls, apps_tls) in [(false, false), (true, false), (true, true)] {
        let apps = render(&layout(tls, apps_tls), &written, &Value::Null);
        assert_eq!(entries(&apps), written, "tls {tls}, apps tls {apps_tls}");
    }
    let none = one(&app_route(None));
    let apps = render(&layout(true, false), &none, &Value::Null);
    assert_eq!(entries(&apps), none);
}

#[test]
fn with_https_custom_domains_redirect_and_are_served_by_the_tls_server() {
    let entries = one(&app_route(Some(vec!["shop.example.org"])));
    let apps = render(&layout(true, false), &entries, &Value::Null);
    let id = Uuid::nil();
    let plain = routes(&apps, SERVER);
    let own = by_id(plain, &format!("berth-app-{id}"));
    assert_eq!(
        own["handle"][0]["handler"], "reverse_proxy",
        "a localhost name stays on HTTP"
    );
    let domains = by_id(plain, &format!("berth-domains-{id}"));
    assert_eq!(domains["handle"][0]["status_code"], 308);
    assert_eq!(
        domains["handle"][0]["headers"]["Location"][0],
        "https://{http.request.host}:8443{http.request.uri}"
    );
    let secure = routes(&apps, TLS_SERVER);
    let served = by_id(secure, &format!("berth-tls-{id}"));
    assert_eq!(served["match"][0]["host"], json!(["shop.example.org"]));
    assert_eq!(
        served["handle"][0]["upstreams"][0]["dial"],
        "127.0.0.1:4000"
    );
    assert_eq!(
        apps["http"]["servers"][TLS_SERVER]["listen"],
        json!([":8443"])
    );
    assert_eq!(apps["http"]["http_port"], 8080);
    assert_eq!(apps["http"]["https_port"], 8443);
    let policy = &apps["tls"]["automation"]["policies"][0];
    assert_eq!(policy["on_demand"], true);
    assert_eq!(policy["issuers"][0]["email"], "ops@example.org");
    assert_eq!(
        apps["tls"]["automation"]["on_demand"]["ask"],
        "http://127.0.0.1:8081/internal/router/tls-ask"
    );
    assert_eq!(secure.last().unwrap()["@id"], "berth-unknown-host");
}

#[test]
fn without_https_custom_domains_are_proxied_over_http() {
    let entries = one(&app_route(Some(vec!["shop.example.org"])));
    let apps = render(&layout(false, false), &entries, &Value::Null);
    let domains = by_id(
        routes(&apps, SERVER),
        &format!("berth-domains-{}", Uuid::nil()),
    );
    assert_eq!(domains["handle"][0]["handler"], "reverse_proxy");
    assert!(apps.pointer("/http/servers/berth-tls").is_none());
}

#[test]
fn a_real_apps_domain_puts_own_hostnames_and_the_console_on_https() {
    let entries = one(&app_route(Some(vec![])));
    let apps = render(&layout(true, true), &entries, &Value::Null);
    let plain = routes(&apps, SERVER);
    assert_eq!(
        by_id(plain, &format!("berth-app-{}", Uuid::nil()))["handle"][0]["status_code"],
        308
    );
    assert_eq!(
        by_id(plain, "berth-console")["handle"][0]["status_code"],
        308
    );
    let secure = routes(&apps, TLS_SERVER);
    assert_eq!(
        by_id(secure, &format!("berth-tls-{}", Uuid::nil()))["match"][0]["host"],
        json!(["shop.acme.localhost"])
    );
    assert_eq!(
        by_id(secure, "berth-console")["handle"][0]["handler"],
        "reverse_proxy"
    );
}

#[test]
fn the_routers_questions_to_the_backend_are_not_reachable_through_the_console() {
    let apps = render(&layout(false, false), &Entries::new(), &Value::Null);
    let console = by_id(routes(&apps, SERVER), "berth-console");
    assert_eq!(
        console["match"][0]["not"][0]["path"],
        json!(["/internal/*"])
    );
}

#[test]
fn a_deploy_keeps_the_domains_and_only_traffic_changes_count() {
    let current = Entry::of(&app_route(Some(vec!["shop.example.org"])), None);
    let moved = AppRoute {
        target: Target::Instances(vec!["127.0.0.1:5000".into()]),
        ..app_route(None)
    };
    let after = Entry::of(&moved, Some(&current));
    assert_eq!(after.domains, vec!["shop.example.org".to_owned()]);
    assert!(after.routes_differently(&current));
    let renamed = Entry::of(&app_route(Some(vec![])), Some(&current));
    assert!(renamed.domains.is_empty());
    assert!(!renamed.routes_differently(&current));
}

#[test]
fn other_servers_and_apps_in_caddys_configuration_stay() {
    let existing = json!({
        "http": {"servers": {"other": {"listen": [":9000"]}, "berth-tls": {"listen": [":1"]}}},
        "pki": {"certificate_authorities": {}},
    });
    let apps = render(&layout(false, false), &Entries::new(), &existing);
    assert_eq!(
        apps["http"]["servers"]["other"],
        existing["http"]["servers"]["other"]
    );
    assert_eq!(apps["pki"], existing["pki"]);
    assert!(
        apps.pointer("/http/servers/berth-tls").is_none(),
        "HTTPS was turned off"
    );
    assert_eq!(apps["http"]["servers"][SERVER]["listen"], json!([":8080"]));
}

#[test]
fn an_app_without_instances_gets_a_503_page() {
    let route = AppRoute {
        target: Target::Instances(vec![]),
        ..app_route(None)
    };
    assert_eq!(Entry::of(&route, None).handle["status_code"], 503);
}

#[test]
fn with_an_access_log_each_apps_names_log_under_its_logger() {
    let entries = one(&app_route(Some(vec!["shop.example.org"])));
    let mut with_log = layout(true, false);
    with_log.access_log = Some("/var/log/berth/access.log".into());
    let apps = render(&with_log, &entries, &Value::Null);
    let logger = json!(format!("app-{}", Uuid::nil()));
    let plain = &apps["http"]["servers"][SERVER]["logs"];
    assert_eq!(plain["logger_names"]["shop.acme.localhost"], logger);
    assert_eq!(plain["logger_names"]["shop.example.org"], logger);
    assert_eq!(plain["skip_unmapped_hosts"], true);
    let secure = &apps["http"]["servers"][TLS_SERVER]["logs"];
    assert_eq!(secure["logger_names"]["shop.example.org"], logger);
    // Caddy matches the Host header as sent: with the port off 80/443.
    assert_eq!(plain["logger_names"]["shop.example.org:8080"], logger);
    assert_eq!(secure["logger_names"]["shop.example.org:8443"], logger);
    assert!(secure["logger_names"].get("shop.acme.localhost").is_none());
    let without = render(&layout(true, false), &entries, &Value::Null);
    assert!(without["http"]["servers"][SERVER].get("logs").is_none());

    let logging = super::logging(
        &json!({"logs": {"default": {"level": "INFO"}}}),
        "/x/access.log".as_ref(),
    );
    assert_eq!(
        logging["logs"]["berth-access"]["writer"]["filename"],
        "/x/access.log"
    );
    assert_eq!(
        logging["logs"]["berth-access"]["include"],
        json!(["http.log.access"])
    );
    assert_eq!(
        logging["logs"]["default"]["exclude"],
        json!(["http.log.access"])
    );
    assert_eq!(
        logging["logs"]["default"]["level"], "INFO",
        "the rest stays"
    );
    assert_eq!(
        super::logging(&logging, "/x/access.log".as_ref()),
        logging,
        "written once"
    );
}
