use super::*;
use crate::kube_fake;
use http::Method;

fn build_namespace_documents() -> Vec<serde_json::Value> {
    tenant_namespace(
        "acme",
        TenantNamespaceKind::Builds,
        &TenantSettings::default(),
    )
    .to_documents()
}

/// The requests applying `berth-acme-build` makes, answered as applied;
/// returns their bodies.
async fn serve_build_namespace(server: &mut kube_fake::ApiServer) -> Vec<serde_json::Value> {
    let ns = "/api/v1/namespaces/berth-acme-build";
    let mut bodies = Vec::new();
    for path in [
        "/api/v1/namespaces/berth-acme-build".to_owned(),
        format!("{ns}/resourcequotas/berth-quota"),
        format!("{ns}/limitranges/berth-limits"),
        "/apis/networking.k8s.io/v1/namespaces/berth-acme-build/networkpolicies/berth-default-deny"
            .to_owned(),
        format!("{ns}/serviceaccounts/{SERVICE_ACCOUNT}"),
    ] {
        let call = server
            .expect(Method::PATCH, &path)
            .await
            .assert_server_side_apply();
        bodies.push(call.json());
        call.respond_applied();
    }
    bodies
}

#[tokio::test]
async fn a_tenant_namespace_is_applied_in_order_and_again_identically() {
    let (client, mut server) = kube_fake::pair();
    let documents = build_namespace_documents();
    let applying = {
        let client = client.clone();
        let documents = documents.clone();
        tokio::spawn(async move {
            apply_all(&client, &documents).await?;
            apply_all(&client, &documents).await
        })
    };
    let first = serve_build_namespace(&mut server).await;
    let second = serve_build_namespace(&mut server).await;
    let applied = applying.await.unwrap().unwrap();
    assert_eq!(applied.len(), 5);
    assert_eq!(first, documents, "the documents go out as rendered");
    assert_eq!(first, second, "a second apply sends the same objects");
    assert_eq!(
        first[0].pointer("/metadata/labels/pod-security.kubernetes.io~1enforce"),
        Some(&serde_json::json!("baseline"))
    );
    // H3: what reaches the API server fences builds off the cluster and
    // the metadata service.
    let internet = &first[3]["spec"]["egress"][1]["to"];
    assert_eq!(internet[0]["ipBlock"]["cidr"], "0.0.0.0/0");
    let except = internet[0]["ipBlock"]["except"].as_array().unwrap();
    for cidr in [
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
    ] {
        assert!(except.contains(&serde_json::json!(cidr)), "{cidr}");
    }
    assert_eq!(internet[1]["ipBlock"]["cidr"], "::/0");
    assert!(internet[1]["ipBlock"]["except"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("fc00::/7")));
    server.done().await;
}

#[tokio::test]
async fn an_api_failure_names_the_object() {
    let (client, mut server) = kube_fake::pair();
    let documents = build_namespace_documents();
    let applying = tokio::spawn(async move { apply_all(&client, &documents).await });
    server
        .expect(Method::PATCH, "/api/v1/namespaces/berth-acme-build")
        .await
        .respond_status(403, "Forbidden", "namespaces is forbidden");
    let error = applying.await.unwrap().unwrap_err();
    assert!(
        error.to_string().contains("Namespace `berth-acme-build`"),
        "{error}"
    );
    assert!(error.to_string().contains("forbidden"), "{error}");
    server.done().await;
}

#[tokio::test]
async fn a_document_without_a_name_is_refused_before_any_request() {
    let (client, server) = kube_fake::pair();
    let error = apply(
        &client,
        &serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, ApplyError::Incomplete("metadata.name")),
        "{error}"
    );
    server.done().await;
}
