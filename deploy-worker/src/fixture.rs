//! A fluent [`Release`] for the tests of both drivers.

use berth_proto::{AppRef, Binding, Release, ReleaseConfig, Resources, SecretKey};
use std::collections::BTreeMap;
use uuid::Uuid;

pub struct ReleaseFixture {
    release: Release,
}

impl ReleaseFixture {
    /// App `web` of tenant `acme` on port 8000, one replica, no resources.
    pub fn new() -> Self {
        let key = SecretKey::from_base64(&SecretKey::generate_base64()).unwrap();
        let app_id = Uuid::now_v7();
        Self {
            release: Release {
                id: Uuid::now_v7(),
                app: AppRef {
                    id: app_id,
                    name: "web".into(),
                    tenant: "acme".into(),
                },
                commit: "abc123".into(),
                image: format!("registry.example:5000/acme/web@sha256:{}", "a".repeat(64)),
                config: ReleaseConfig {
                    port: 8000,
                    env: key.seal_json(
                        &Binding::app_env("acme", app_id),
                        &BTreeMap::<String, String>::new(),
                    ),
                    env_version: 1,
                    replicas: 1,
                    resources: Resources::default(),
                    health_check_path: None,
                },
            },
        }
    }

    pub fn app(mut self, tenant: &str, name: &str) -> Self {
        self.release.app.tenant = tenant.into();
        self.release.app.name = name.into();
        self
    }

    pub fn commit(mut self, commit: &str) -> Self {
        self.release.commit = commit.into();
        self
    }

    /// Env vars sealed with `key` for the release's app, as the backend
    /// sends them (so call it after [`app`](Self::app)).
    pub fn env(mut self, key: &SecretKey, env: &BTreeMap<String, String>) -> Self {
        let app = &self.release.app;
        let binding = Binding::app_env(&app.tenant, app.id);
        self.release.config.env = key.seal_json(&binding, env);
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.release.config.port = port;
        self
    }

    pub fn replicas(mut self, replicas: u32) -> Self {
        self.release.config.replicas = replicas;
        self
    }

    pub fn health_check_path(mut self, path: &str) -> Self {
        self.release.config.health_check_path = Some(path.into());
        self
    }

    pub fn resources(mut self, cpu_millis: u32, memory_mb: u32) -> Self {
        self.release.config.resources = Resources {
            cpu_millis: Some(cpu_millis),
            memory_mb: Some(memory_mb),
        };
        self
    }

    pub fn build(self) -> Release {
        self.release
    }
}
