//! Around the backend and between the pods: the disruption budget and the
//! autoscaler, the Ingress and the Services, the NetworkPolicies.

use crate::render::{overlays, rendered};
use crate::{
    array, container_port, labels, port_of, replicas, str_of, strings, BACKEND, BUILD_WORKER,
    DEPLOY_WORKER, LOG_STREAMER, PROCESSES, WORKERS,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether a pod carries every one of the `wanted` labels.
fn has_labels(pod: &BTreeMap<String, String>, wanted: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// Whether a LabelSelector (matchLabels and matchExpressions) selects a pod.
fn selects(selector: &Value, pod: &BTreeMap<String, String>) -> bool {
    let expressions_hold = array(selector.get("matchExpressions")).iter().all(|e| {
        let value = pod.get(str_of(e, "/key")).map(String::as_str).unwrap_or("");
        match str_of(e, "/operator") {
            "In" => strings(e.get("values")).contains(&value),
            "NotIn" => !strings(e.get("values")).contains(&value),
            "Exists" => pod.contains_key(str_of(e, "/key")),
            "DoesNotExist" => !pod.contains_key(str_of(e, "/key")),
            _ => false,
        }
    });
    has_labels(pod, &labels(selector.get("matchLabels"))) && expressions_hold
}

/// Whether a NetworkPolicy rule (ingress or egress) names `port`.
fn names_port(rule: &Value, port: u16) -> bool {
    array(rule.get("ports")).iter().any(|p| p["port"] == port)
}

#[test]
fn a_budget_and_an_autoscaler_target_the_backend_and_the_budget_allows_a_drain() {
    for rendered in overlays() {
        let backend = rendered.workload(BACKEND);
        let pod_labels = rendered.pod_labels(BACKEND);
        // The budget selects by matchLabels alone.
        let matches = |selector: &Value, pod: &BTreeMap<String, String>| {
            !labels(selector.get("matchLabels")).is_empty()
                && selector.get("matchExpressions").is_none()
                && selects(selector, pod)
        };

        let budgets = rendered.all("PodDisruptionBudget");
        assert_eq!(
            budgets.len(),
            1,
            "{}: one PodDisruptionBudget",
            rendered.name
        );
        let budget = budgets[0];
        assert!(
            matches(&budget["spec"]["selector"], &pod_labels),
            "{}: the budget does not select the backend's pods",
            rendered.name
        );
        for process in WORKERS {
            let other = rendered.pod_labels(process);
            assert!(
                !matches(&budget["spec"]["selector"], &other),
                "{}: the budget also selects {process}",
                rendered.name
            );
        }

        let hpa = rendered.find("HorizontalPodAutoscaler", BACKEND);
        assert_eq!(hpa["apiVersion"], "autoscaling/v2", "{}", rendered.name);
        assert_eq!(
            (
                str_of(hpa, "/spec/scaleTargetRef/kind"),
                str_of(hpa, "/spec/scaleTargetRef/name")
            ),
            ("Deployment", BACKEND),
            "{}: the autoscaler must scale the backend",
            rendered.name
        );
        assert!(
            array(hpa["spec"].get("metrics"))
                .iter()
                .any(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu"),
            "{}: the autoscaler scales on CPU",
            rendered.name
        );

        // The fewest backends there can be; the budget must still let one go.
        let fewest =
            replicas(&backend["spec"]["replicas"]).min(replicas(&hpa["spec"]["minReplicas"]));
        let spec = &budget["spec"];
        if let Some(min) = spec["minAvailable"].as_u64() {
            assert!(
                min < fewest,
                "{}: minAvailable {min} with as few as {fewest} backend(s) blocks every drain",
                rendered.name
            );
        } else {
            assert!(
                spec["maxUnavailable"].as_u64().is_some_and(|n| n >= 1),
                "{}: the budget needs minAvailable or maxUnavailable (a number)",
                rendered.name
            );
        }
    }
    assert_eq!(
        rendered("production").find("PodDisruptionBudget", BACKEND)["spec"]["minAvailable"],
        1,
        "production: at least one backend stays up during disruptions"
    );
}

#[test]
fn the_backend_is_reachable_through_an_ingress_and_services_select_their_pods() {
    for rendered in overlays() {
        let ingress = rendered.find("Ingress", BACKEND);
        let backend = ingress
            .pointer("/spec/rules/0/http/paths/0/backend/service")
            .unwrap_or_else(|| panic!("{}: the Ingress routes nowhere", rendered.name));
        assert_eq!(backend["name"], BACKEND, "{}", rendered.name);
        let service = rendered.find("Service", BACKEND);
        let service_port = array(service["spec"].get("ports"))
            .iter()
            .find(|p| {
                p["name"] == backend["port"]["name"] || p["port"] == backend["port"]["number"]
            })
            .unwrap_or_else(|| {
                panic!(
                    "{}: the Ingress names a port the Service lacks",
                    rendered.name
                )
            });
        assert_eq!(
            container_port(rendered.container(BACKEND), &service_port["targetPort"]),
            port_of(rendered.config_value("BERTH_LISTEN")),
            "{}: the Service does not reach the API's port",
            rendered.name
        );
        // L3: /metrics is on the ops port, which no Ingress path reaches.
        let ops_port = port_of(rendered.config_value("BERTH_OPS_ADDR"));
        assert_ne!(
            port_of(rendered.config_value("BERTH_LISTEN")),
            ops_port,
            "{}: the backend's ops port must not be its public one",
            rendered.name
        );
        for path in array(ingress.pointer("/spec/rules/0/http/paths")) {
            let routed = &path["backend"]["service"];
            let service = rendered.find("Service", routed["name"].as_str().unwrap());
            for port in array(service["spec"].get("ports")) {
                if port["name"] == routed["port"]["name"]
                    || port["port"] == routed["port"]["number"]
                {
                    assert_ne!(
                        container_port(rendered.container(BACKEND), &port["targetPort"]),
                        ops_port,
                        "{}: the Ingress reaches the backend's /metrics",
                        rendered.name
                    );
                }
            }
        }
        for (process, _) in PROCESSES {
            let service = rendered.find("Service", process);
            let selector = labels(service["spec"].get("selector"));
            let pod = rendered.pod_labels(process);
            assert!(
                !selector.is_empty() && has_labels(&pod, &selector),
                "{}: the Service {process} does not select its pods",
                rendered.name
            );
        }
    }
}

#[test]
fn network_policies_deny_by_default_and_admit_only_what_berth_uses() {
    for rendered in overlays() {
        let policies = rendered.all("NetworkPolicy");
        let applies_to = |policy: &Value, process: &str| {
            selects(
                &policy["spec"]["podSelector"],
                &rendered.pod_labels(process),
            )
        };

        let default_deny = policies.iter().any(|p| {
            p["spec"]["podSelector"]
                .as_object()
                .is_some_and(|s| s.is_empty())
                && strings(p["spec"].get("policyTypes")).contains(&"Ingress")
                && strings(p["spec"].get("policyTypes")).contains(&"Egress")
                && array(p["spec"].get("ingress")).is_empty()
                && array(p["spec"].get("egress")).is_empty()
        });
        assert!(
            default_deny,
            "{}: no default-deny NetworkPolicy (every pod, Ingress and Egress, no rules)",
            rendered.name
        );

        // Who may connect to a process's port, by namespace name.
        let admits = |process: &str, namespace: &str, port: u16| {
            policies.iter().any(|p| {
                applies_to(p, process)
                    && array(p["spec"].get("ingress")).iter().any(|rule| {
                        array(rule.get("from")).iter().any(|from| {
                            labels(from.pointer("/namespaceSelector/matchLabels"))
                                .get("kubernetes.io/metadata.name")
                                .map(String::as_str)
                                == Some(namespace)
                        }) && names_port(rule, port)
                    })
            })
        };
        // Where a process may connect to, by port.
        let may_reach = |process: &str, port: u16| {
            policies.iter().any(|p| {
                applies_to(p, process)
                    && array(p["spec"].get("egress"))
                        .iter()
                        .any(|rule| names_port(rule, port))
            })
        };

        let api_port = port_of(rendered.config_value("BERTH_LISTEN"));
        // The ingress controller berth's apps are reached through serves berth too.
        let ingress = rendered.config_value("BERTH_K8S_INGRESS_NAMESPACE");
        let ops_port = port_of(rendered.config_value("BERTH_OPS_ADDR"));
        assert!(
            admits(BACKEND, ingress, api_port),
            "{}: the ingress controller cannot reach the backend on {api_port}",
            rendered.name
        );
        assert!(
            admits(BACKEND, "monitoring", ops_port),
            "{}: monitoring cannot scrape the backend on {ops_port}",
            rendered.name
        );
        assert!(
            !admits(BACKEND, ingress, ops_port),
            "{}: the backend's ops port is open to the ingress controller",
            rendered.name
        );
        for worker in WORKERS {
            assert!(
                admits(worker, "monitoring", ops_port),
                "{}: monitoring cannot scrape {worker} on {ops_port}",
                rendered.name
            );
            assert!(
                !admits(worker, ingress, ops_port),
                "{}: {worker} is open to the ingress controller",
                rendered.name
            );
            assert!(
                may_reach(worker, 6443) && may_reach(worker, 443),
                "{}: {worker} cannot reach the Kubernetes API server",
                rendered.name
            );
        }
        for (process, _) in PROCESSES {
            assert!(
                may_reach(process, 53),
                "{}: {process} has no DNS",
                rendered.name
            );
        }
        for (process, ports) in [
            (BACKEND, &[5432_u16, 5672, 9092][..]),
            (BUILD_WORKER, &[5672, 9092][..]),
            (DEPLOY_WORKER, &[5672, 9092][..]),
            (LOG_STREAMER, &[9092][..]),
        ] {
            for port in ports {
                assert!(
                    may_reach(process, *port),
                    "{}: {process} cannot reach port {port}",
                    rendered.name
                );
            }
        }
        assert!(
            !may_reach(BACKEND, 6443),
            "{}: the backend has no business with the API server",
            rendered.name
        );
    }
}

/// The tenant fences the workers apply, rendered with the settings an
/// overlay ships (every `BERTH_K8S_*` value of its ConfigMap, passed as the
/// flags the workers read).
fn tenant_settings(rendered: &crate::render::Rendered) -> berth_common::kubernetes::TenantSettings {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        tenant: berth_common::kubernetes::TenantSettings,
    }
    let data = rendered.config()["data"].as_object().unwrap();
    let mut args = vec!["worker".to_owned()];
    for arg in Flags::command().get_arguments() {
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        if let Some(value) = env.and_then(|env| data.get(&env)).and_then(Value::as_str) {
            args.push(format!("--{}={value}", arg.get_long().unwrap()));
        }
    }
    Flags::try_parse_from(&args)
        .unwrap_or_else(|e| {
            panic!(
                "{}: the BERTH_K8S_* settings do not parse: {e}",
                rendered.name
            )
        })
        .tenant
}

fn covers(cidr: &str, address: &str) -> bool {
    let bits = |ip: std::net::IpAddr| match ip {
        std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u32),
        std::net::IpAddr::V6(v6) => (u128::from(v6), 128u32),
    };
    let (net, prefix) = cidr.split_once('/').unwrap();
    let (net, width) = bits(net.parse().unwrap());
    let (ip, ip_width) = bits(address.parse().unwrap());
    let shift = width - prefix.parse::<u32>().unwrap();
    width == ip_width && net.checked_shr(shift).unwrap_or(0) == ip.checked_shr(shift).unwrap_or(0)
}

/// H3: with the settings each overlay ships, a tenant's builds reach the
/// internet on 80/443 and the registry's port, but not the cluster's pods
/// and services, private networks, CGNAT or the metadata service.
#[test]
fn tenant_builds_reach_neither_the_cluster_nor_the_metadata_service() {
    use berth_common::kubernetes::{tenant_namespace, TenantNamespaceKind};
    for rendered in overlays() {
        let settings = tenant_settings(rendered);
        let builds = tenant_namespace("acme", TenantNamespaceKind::Builds, &settings);
        let policy = serde_json::to_value(&builds.network_policy).unwrap();
        let egress = array(policy.pointer("/spec/egress"));
        for rule in egress {
            assert!(
                rule.get("to").is_some_and(|to| !array(Some(to)).is_empty()),
                "{}: an egress rule without `to` reaches every address: {rule}",
                rendered.name
            );
        }
        let blocks: Vec<&Value> = egress
            .iter()
            .flat_map(|rule| array(rule.get("to")))
            .filter_map(|peer| peer.get("ipBlock"))
            .collect();
        let except_of = |cidr: &str| -> Vec<&str> {
            let block = blocks
                .iter()
                .find(|b| b["cidr"] == cidr)
                .unwrap_or_else(|| panic!("{}: no ipBlock {cidr}", rendered.name));
            strings(block.get("except"))
        };
        let (v4, v6) = (except_of("0.0.0.0/0"), except_of("::/0"));
        let mut internal = vec![
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd00:ec2::254",
            "fe80::1",
        ];
        let cluster = rendered.config_value("BERTH_K8S_CLUSTER_CIDRS");
        let first_addresses: Vec<String> = cluster
            .split(',')
            .map(|cidr| cidr.trim().split_once('/').unwrap().0.to_owned())
            .collect();
        internal.extend(first_addresses.iter().map(String::as_str));
        for address in internal {
            let list = if address.contains(':') { &v6 } else { &v4 };
            assert!(
                list.iter().any(|cidr| covers(cidr, address)),
                "{}: tenant builds can reach {address}",
                rendered.name
            );
        }
        for cidr in cluster.split(',') {
            let list = if cidr.contains(':') { &v6 } else { &v4 };
            assert!(
                list.contains(&cidr.trim()),
                "{}: the cluster CIDR {cidr} is not denied to builds",
                rendered.name
            );
        }
        assert!(
            !v4.iter().any(|cidr| covers(cidr, "140.82.121.4")),
            "{}: builds must still reach public hosts",
            rendered.name
        );
    }
    // kind's registry runs in the cluster: allowed by name, on its port.
    let kind = rendered("kind");
    let settings = tenant_settings(kind);
    let builds = tenant_namespace("acme", TenantNamespaceKind::Builds, &settings);
    let policy = serde_json::to_value(&builds.network_policy).unwrap();
    let to_registry = array(policy.pointer("/spec/egress")).iter().any(|rule| {
        names_port(rule, 5000)
            && array(rule.get("to")).iter().any(|peer| {
                peer.pointer("/namespaceSelector/matchLabels/kubernetes.io~1metadata.name")
                    == Some(&Value::from("berth-deps"))
            })
    });
    assert!(
        to_registry,
        "kind: builds cannot push to the in-cluster registry"
    );
}
