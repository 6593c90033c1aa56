//! Configuration: settings from the ConfigMap, secrets from the Secret.

use crate::render::{overlays, rendered};
use crate::{array, str_of, BACKEND, BUILD_WORKER, DEPLOY_WORKER, LOG_STREAMER};
use serde_json::Value;
use std::collections::BTreeSet;

#[test]
fn config_comes_from_the_configmap_and_secrets_from_the_secret() {
    let placeholder = rendered("base").find("Secret", "berth-secrets");
    let secret_keys: BTreeSet<&str> = placeholder["stringData"]
        .as_object()
        .expect("the placeholder Secret lists its keys in stringData")
        .keys()
        .map(String::as_str)
        .collect();
    // What each process cannot start without.
    let needs: [(&str, &[&str]); 4] = [
        (
            BACKEND,
            &[
                "BERTH_DATABASE_URL",
                "BERTH_AMQP_URL",
                "BERTH_SECRET_KEY",
                "BERTH_JWT_SECRET",
                "BERTH_KAFKA_BROKERS",
                "BERTH_REGISTRY_TOKEN_KEY",
                "BERTH_REGISTRY_TOKEN_CERT",
            ],
        ),
        (
            BUILD_WORKER,
            &[
                "BERTH_AMQP_URL",
                "BERTH_SECRET_KEY",
                "BERTH_REGISTRY",
                "BERTH_KAFKA_BROKERS",
            ],
        ),
        (
            DEPLOY_WORKER,
            &[
                "BERTH_AMQP_URL",
                "BERTH_SECRET_KEY",
                "BERTH_REGISTRY",
                "BERTH_KAFKA_BROKERS",
            ],
        ),
        (
            LOG_STREAMER,
            &["BERTH_KAFKA_BROKERS", "BERTH_LOG_STREAMER_STATE_DIR"],
        ),
    ];
    for rendered in overlays() {
        let config = rendered.config();
        let config_name = str_of(config, "/metadata/name");
        let data = config["data"].as_object().expect("the ConfigMap has data");
        for (key, value) in data {
            let value = value.as_str().unwrap_or_default();
            assert!(
                !secret_keys.contains(key.as_str())
                    && !key.contains("PASSWORD")
                    && !key.contains("SECRET"),
                "{}: {key} is a secret and belongs in the Secret, not the ConfigMap",
                rendered.name
            );
            assert!(
                !(value.contains("://") && value.contains('@')),
                "{}: {key} carries credentials in a URL; it belongs in the Secret",
                rendered.name
            );
        }
        assert_ne!(
            data.get("BERTH_ALLOW_LOCAL_REPOS").and_then(Value::as_str),
            Some("true"),
            "{}: local repositories are for development only",
            rendered.name
        );
        // The placeholder never reaches a cluster: the real Secret is made beforehand.
        assert!(
            rendered.all("Secret").is_empty(),
            "{}: the overlay must not apply the placeholder Secret",
            rendered.name
        );
        for (process, needed) in needs {
            for (label, container) in rendered.all_containers(process) {
                assert!(
                    array(container.get("envFrom"))
                        .iter()
                        .any(|from| from["configMapRef"]["name"] == config_name),
                    "{label}: does not read the ConfigMap {config_name} (envFrom)"
                );
                let mut seen: BTreeSet<&str> = data.keys().map(String::as_str).collect();
                for env in array(container.get("env")) {
                    let name = str_of(env, "/name");
                    assert!(
                        env.get("value").is_none() || !secret_keys.contains(name),
                        "{label}: {name} is written into the pod spec instead of coming from the Secret"
                    );
                    if let Some(reference) = env.pointer("/valueFrom/secretKeyRef") {
                        assert_eq!(
                            reference["name"], "berth-secrets",
                            "{label}: {name} from an unknown Secret"
                        );
                        let key = str_of(reference, "/key");
                        assert!(
                            secret_keys.contains(key),
                            "{label}: {name} reads the key {key}, which berth-secrets does not have"
                        );
                        assert_ne!(
                            reference["optional"], true,
                            "{label}: {name} must not be optional"
                        );
                    }
                    seen.insert(name);
                }
                if label.ends_with("/migrate") {
                    continue;
                }
                for need in needed {
                    assert!(seen.contains(need), "{label}: {need} is not set");
                }
            }
        }
        // The log-streamer needs no secret: it gets none.
        for (label, container) in rendered.all_containers(LOG_STREAMER) {
            assert!(
                array(container.get("env"))
                    .iter()
                    .all(|env| env.pointer("/valueFrom/secretKeyRef").is_none()),
                "{label}: reads a secret it does not need"
            );
        }
    }
}

/// The registry's token service is the backend: it signs with the key of
/// the Secret berth-registry-token, mounted where the ConfigMap says; the
/// registry's auth config (ConfigMap berth-registry-auth) names the
/// backend's public URL as its realm and the same service and issuer. No
/// registry user or password is configured anywhere.
#[test]
fn the_registry_asks_the_backend_for_tokens_signed_with_the_mounted_key() {
    for rendered in overlays() {
        let backend = rendered.container(BACKEND);
        let pod = rendered.workload(BACKEND)["spec"]["template"]["spec"].clone();
        for key in ["BERTH_REGISTRY_TOKEN_KEY", "BERTH_REGISTRY_TOKEN_CERT"] {
            let path = rendered.config_value(key);
            let (dir, file) = path.rsplit_once('/').unwrap();
            let mount = array(backend.get("volumeMounts"))
                .iter()
                .find(|m| m["mountPath"] == dir)
                .unwrap_or_else(|| panic!("{}: {key}={path} is not mounted", rendered.name));
            assert_eq!(mount["readOnly"], true, "{}: {key}", rendered.name);
            let volume = array(pod.get("volumes"))
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap();
            assert_eq!(
                volume["secret"]["secretName"], "berth-registry-token",
                "{}: {key}",
                rendered.name
            );
            assert!(
                array(volume["secret"].get("items"))
                    .iter()
                    .any(|item| item["path"] == file),
                "{}: {file} is not in the volume",
                rendered.name
            );
        }
        let auth = rendered.find("ConfigMap", "berth-registry-auth");
        let auth: Value = serde_saphyr::from_str(str_of(auth, "/data/config.yml"))
            .unwrap_or_else(|e| panic!("{}: the registry's auth config: {e}", rendered.name));
        let token = &auth["auth"]["token"];
        assert_eq!(
            token["realm"].as_str().unwrap(),
            format!(
                "{}/api/v1/registry/token",
                rendered.config_value("BERTH_PUBLIC_URL")
            ),
            "{}: the realm is the backend's public URL",
            rendered.name
        );
        assert_eq!(
            token["service"].as_str().unwrap(),
            rendered.config_value("BERTH_REGISTRY_SERVICE")
        );
        assert_eq!(
            token["issuer"].as_str().unwrap(),
            rendered.config_value("BERTH_REGISTRY_TOKEN_ISSUER")
        );
        assert!(auth["auth"].get("htpasswd").is_none());
        let data = rendered.config()["data"].as_object().unwrap();
        for key in ["BERTH_REGISTRY_USERNAME", "BERTH_REGISTRY_PASSWORD"] {
            assert!(!data.contains_key(key), "{}: {key}", rendered.name);
        }
    }
    let placeholder = rendered("base").find("Secret", "berth-registry-token");
    assert_eq!(placeholder["type"], "kubernetes.io/tls");
}
