//! Custom domains on Kubernetes: one Ingress per app, `<app>-domains`, with
//! a rule per verified domain to the app's Service (its `http` port), and
//! a TLS entry per domain that cert-manager fills (one certificate each,
//! so one domain's failing issuance never holds up another's). It is kept
//! apart from the app's own Ingress, which each deploy applies from the
//! release: domains change without a deploy, from the desired state the
//! reconciler gets, and a deploy never drops them.

use berth_common::kubernetes::{app_namespace, base_labels, meta};
use berth_proto::{labels, AppRef};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

use super::runtime::gone_or;
use super::{KubeRuntime, KubernetesSettings};
use crate::error::DeployError;
use crate::runtime::RouteWant;
use berth_common::kubernetes::apply;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams};
use std::collections::BTreeSet;
use uuid::Uuid;

pub fn domains_ingress_name(app: &AppRef) -> String {
    format!("{}-domains", app.name)
}

/// `<app>-domain-<hash of the name>`: the Secret of one domain's
/// certificate (a hash, since a domain is longer than a name may be).
pub fn domain_secret_name(app: &AppRef, domain: &str) -> String {
    let hash = hex::encode(&Sha256::digest(domain.as_bytes())[..6]);
    format!("{}-domain-{hash}", app.name)
}

pub fn domains_ingress(app: &AppRef, domains: &[String], settings: &KubernetesSettings) -> Ingress {
    let namespace = app_namespace(&app.tenant);
    let mut app_labels = base_labels(&app.tenant);
    app_labels.insert(labels::APP.to_owned(), app.id.to_string());
    app_labels.insert(labels::APP_NAME.to_owned(), app.name.clone());
    app_labels.insert(labels::DOMAINS.to_owned(), "true".to_owned());
    let mut metadata = meta(
        domains_ingress_name(app),
        Some(namespace.as_str()),
        app_labels,
    );
    metadata.annotations = Some(BTreeMap::from([(
        "cert-manager.io/cluster-issuer".to_owned(),
        settings.cluster_issuer.clone(),
    )]));
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: app.name.clone(),
            port: Some(ServiceBackendPort {
                name: Some("http".to_owned()),
                number: None,
            }),
        }),
        resource: None,
    };
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: Some(settings.ingress_class.clone()),
            tls: Some(
                domains
                    .iter()
                    .map(|domain| IngressTLS {
                        hosts: Some(vec![domain.clone()]),
                        secret_name: Some(domain_secret_name(app, domain)),
                    })
                    .collect(),
            ),
            rules: Some(
                domains
                    .iter()
                    .map(|domain| IngressRule {
                        host: Some(domain.clone()),
                        http: Some(HTTPIngressRuleValue {
                            paths: vec![HTTPIngressPath {
                                path: Some("/".to_owned()),
                                path_type: "Prefix".to_owned(),
                                backend: backend.clone(),
                            }],
                        }),
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether `ingress` is berth's Ingress of an app's custom domains.
pub fn is_domains_ingress(ingress: &Ingress) -> bool {
    ingress
        .metadata
        .labels
        .as_ref()
        .is_some_and(|labels| labels.contains_key(labels::DOMAINS))
}

/// The domains an Ingress routes, sorted.
pub fn domains_of(ingress: &Ingress) -> Vec<String> {
    let mut hosts: Vec<String> = ingress
        .spec
        .iter()
        .flat_map(|spec| spec.rules.iter().flatten())
        .filter_map(|rule| rule.host.clone())
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// The certificate Secrets an Ingress names in its TLS entries.
pub fn certificate_secrets(ingress: &Ingress) -> Vec<String> {
    ingress
        .spec
        .iter()
        .flat_map(|spec| spec.tls.iter().flatten())
        .filter_map(|tls| tls.secret_name.clone())
        .collect()
}

impl KubeRuntime {
    /// Each app's `<app>-domains` Ingress made to hold its verified domains
    /// (applied only when they differ, deleted when it has none), and the
    /// certificate Secrets of domains it no longer has deleted. Ingresses
    /// of apps the wants do not name go, unless `keep` names them.
    pub(super) async fn converge_domains(
        &self,
        wants: &[RouteWant],
        keep: &(dyn Fn(Uuid) -> bool + Send + Sync),
    ) -> Result<(), DeployError> {
        let selector = format!(
            "{}={},{}",
            labels::MANAGED_BY,
            labels::MANAGED_BY_VALUE,
            labels::DOMAINS
        );
        let all: Api<Ingress> = Api::all(self.client.clone());
        let existing = all.list(&ListParams::default().labels(&selector)).await?;
        let existing: Vec<&Ingress> = existing
            .items
            .iter()
            .filter(|i| is_domains_ingress(i))
            .collect();
        let of_app = |id: Uuid| {
            existing.iter().copied().find(|ingress| {
                ingress
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(labels::APP))
                    == Some(&id.to_string())
            })
        };
        for want in wants {
            let mut wanted = want.domains.clone();
            wanted.sort();
            wanted.dedup();
            let have = of_app(want.app.id);
            if have.map(domains_of).unwrap_or_default() == wanted {
                continue;
            }
            if wanted.is_empty() {
                let name = domains_ingress_name(&want.app);
                gone_or(
                    self.api::<Ingress>(&want.app)
                        .delete(&name, &DeleteParams::default())
                        .await,
                )?;
            } else {
                let ingress = domains_ingress(&want.app, &wanted, &self.settings);
                apply(&self.client, &berth_common::kubernetes::document(&ingress)).await?;
            }
            let kept: BTreeSet<String> = wanted
                .iter()
                .map(|domain| domain_secret_name(&want.app, domain))
                .collect();
            for secret in have.map(certificate_secrets).unwrap_or_default() {
                if !kept.contains(&secret) {
                    gone_or(
                        self.api::<Secret>(&want.app)
                            .delete(&secret, &DeleteParams::default())
                            .await,
                    )?;
                }
            }
            tracing::info!(app_id = %want.app.id, domains = ?wanted, "the app's custom domains are on its Ingress");
        }
        for ingress in existing {
            let app = crate::runtime::apps_of([ingress], |i, key| {
                i.metadata.labels.as_ref()?.get(key).cloned()
            });
            let Some(app) = app.into_iter().next() else {
                continue;
            };
            if keep(app.id) || wants.iter().any(|want| want.app.id == app.id) {
                continue;
            }
            let name = domains_ingress_name(&app);
            gone_or(
                self.api::<Ingress>(&app)
                    .delete(&name, &DeleteParams::default())
                    .await,
            )?;
            for secret in certificate_secrets(ingress) {
                gone_or(
                    self.api::<Secret>(&app)
                        .delete(&secret, &DeleteParams::default())
                        .await,
                )?;
            }
        }
        Ok(())
    }
}
