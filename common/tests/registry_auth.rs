//! Per-tenant registry credentials against the real registry (Debian's
//! docker-registry, Distribution 2.8) with token authentication, its realm
//! served by berth's token service: every request goes through the whole
//! token flow (401 with a Bearer challenge, a token for the grant, the
//! request again with the token), as Docker, Podman and Kaniko do it.

use berth_common::registry_auth::{Access, Credentials, RegistryCredentials};
use berth_common::testing::registry::TestRegistry;
use berth_common::testing::registry_client::{Refused, RegistryClient as Client};
use reqwest::StatusCode;

const SECRET: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn grant(tenant: &str, access: Access) -> Credentials {
    TestRegistry::grants(SECRET).for_tenant(tenant, access)
}

#[tokio::test]
async fn a_push_grant_pushes_its_own_tenants_images_and_layer_cache() {
    let registry = TestRegistry::start(SECRET).await;
    let push = Client::new(&registry, grant("a", Access::Push));
    let digest = push
        .push("a/web", "1")
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", registry.log()));
    push.push("cache/a", "layer").await.unwrap();
    assert_eq!(push.head("a/web", &digest).await, StatusCode::OK);
    let pull = Client::new(&registry, grant("a", Access::Pull));
    assert_eq!(pull.head("a/web", "1").await, StatusCode::OK);
    assert_eq!(pull.head("a/web", &digest).await, StatusCode::OK);
}

#[tokio::test]
async fn a_push_grant_of_one_tenant_cannot_push_to_another_tenants_images_or_cache() {
    let registry = TestRegistry::start(SECRET).await;
    let victim = Client::new(&registry, grant("b", Access::Push));
    let digest = victim.push("b/web", "1").await.unwrap();
    victim.push("cache/b", "layer").await.unwrap();

    let attacker = Client::new(&registry, grant("a", Access::Push));
    for name in ["b/web", "cache/b"] {
        assert_eq!(
            attacker.push(name, "1").await,
            Err(Refused {
                step: "upload",
                status: StatusCode::UNAUTHORIZED
            }),
            "{name}"
        );
    }
    // Nor read them: the victim's tag still names the victim's image.
    assert_eq!(attacker.head("b/web", "1").await, StatusCode::UNAUTHORIZED);
    let pull = Client::new(&registry, grant("b", Access::Pull));
    assert_eq!(pull.head("b/web", "1").await, StatusCode::OK);
    assert_eq!(pull.head("b/web", &digest).await, StatusCode::OK);
}

#[tokio::test]
async fn a_pull_grant_pulls_but_cannot_push() {
    let registry = TestRegistry::start(SECRET).await;
    Client::new(&registry, grant("a", Access::Push))
        .push("a/web", "1")
        .await
        .unwrap();
    let pull = Client::new(&registry, grant("a", Access::Pull));
    assert_eq!(pull.head("a/web", "1").await, StatusCode::OK);
    for name in ["a/web", "cache/a"] {
        assert_eq!(
            pull.push(name, "2").await,
            Err(Refused {
                step: "upload",
                status: StatusCode::UNAUTHORIZED
            }),
            "{name}"
        );
    }
    // Another tenant's pull grant does not even read.
    let other = Client::new(&registry, grant("b", Access::Pull));
    assert_eq!(other.head("a/web", "1").await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn credentials_that_are_not_a_grant_of_this_installation_get_nothing() {
    let registry = TestRegistry::start(SECRET).await;
    for credentials in [
        Credentials {
            username: "berth".into(),
            password: "the old shared password".into(),
        },
        TestRegistry::grants("CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=")
            .for_tenant("a", Access::Push),
    ] {
        let client = Client::new(&registry, credentials);
        assert_eq!(
            client.push("a/web", "1").await,
            Err(Refused {
                step: "upload",
                status: StatusCode::UNAUTHORIZED
            })
        );
    }
}
