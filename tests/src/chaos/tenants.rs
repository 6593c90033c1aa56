//! The fault suite's tenants: users of the platform, each with apps whose
//! code prints a numbered line every second, so a lost or repeated log line
//! shows.

use crate::api::PASSWORD;
use crate::{AppRepo, Client, Platform};
use anyhow::{bail, Context, Result};
use rand::RngCore;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// One app of a tenant, as the suite made it.
pub struct App {
    pub id: String,
    pub name: String,
    pub repo: AppRepo,
    /// Versions committed so far (the next commit is `v{versions}`).
    pub versions: usize,
    pub deleted: bool,
}

pub struct Tenant {
    pub name: String,
    /// Signed in; its token is renewed by logging in again.
    client: Mutex<Client>,
    /// Every backend's address: a call goes to the next when one is down.
    backends: Vec<String>,
    pub apps: Mutex<Vec<App>>,
}

impl Tenant {
    /// Signs up `name` on the platform.
    pub async fn sign_up(platform: &Platform, name: &str) -> Result<Self> {
        let mut client = Client::new(&platform.base_url);
        client.sign_up(name).await?;
        Ok(Self {
            name: name.to_owned(),
            client: Mutex::new(client),
            backends: platform.backend_urls(),
            apps: Mutex::new(Vec::new()),
        })
    }

    /// Creates an app with a ticking repository at `v0`.
    pub async fn create_app(&self, name: &str) -> Result<App> {
        let repo = AppRepo::python_ticking("v0")?;
        // A long history: the local transport clones all of it, so a clone
        // lasts about a second, long enough for the faults to meet it. The
        // work tree (and the image) stays small.
        let mut ballast = vec![0u8; 32 << 20];
        rand::thread_rng().fill_bytes(&mut ballast);
        std::fs::write(repo.path().join("ballast"), ballast)?;
        repo.commit("ballast")?;
        std::fs::remove_file(repo.path().join("ballast"))?;
        repo.commit("no ballast")?;
        let app = self
            .expect(
                reqwest::Method::POST,
                "/apps",
                Some(json!({"name": name, "repo_url": repo.url(), "port": 8000})),
                &[201],
            )
            .await?;
        Ok(App {
            id: app["id"].as_str().context("an app id")?.to_owned(),
            name: name.to_owned(),
            repo,
            versions: 1,
            deleted: false,
        })
    }

    /// Calls the API as a CLI under faults would: a request that finds its
    /// backend down, or answers 5xx or 429, is sent again (to the next
    /// backend) for up to two minutes; an expired session logs in again.
    /// Other answers are returned as they are.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut attempt = 0;
        loop {
            let mut client = self.client.lock().await.clone();
            client.base_url = self.backends[attempt % self.backends.len()].clone();
            attempt += 1;
            let outcome = client
                .call_with(method.clone(), path, body.clone(), headers)
                .await;
            let retry = match &outcome {
                Ok((401, _)) => {
                    self.log_in(&client).await.ok();
                    true
                }
                Ok((status, _)) => *status >= 500 || *status == 429,
                Err(_) => true,
            };
            if !retry || Instant::now() > deadline {
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// [`call`](Self::call), insisting on one of `expected`.
    pub async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expected: &[u16],
    ) -> Result<Value> {
        let (status, value) = self.call(method.clone(), path, body, &[]).await?;
        if !expected.contains(&status) {
            bail!("{} {method} {path}: {status} {value}", self.name);
        }
        Ok(value)
    }

    async fn log_in(&self, through: &Client) -> Result<()> {
        let mut anonymous = through.clone();
        anonymous.token = None;
        let (status, tokens) = anonymous
            .call(
                reqwest::Method::POST,
                "/auth/login",
                Some(json!({"login": self.name, "password": PASSWORD})),
            )
            .await?;
        anyhow::ensure!(status == 200, "logging in {}: {status} {tokens}", self.name);
        let token = tokens["access_token"].as_str().context("an access token")?;
        self.client.lock().await.token = Some(token.to_owned());
        Ok(())
    }
}
