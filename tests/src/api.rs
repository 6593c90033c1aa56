//! A small client for berth's public API, as a user's CLI would use it.

use anyhow::{bail, Context, Result};
use berth_common::testing::mailbox;
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The password [`Client::sign_up`] gives every user.
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone)]
pub struct Client {
    pub base_url: String,
    pub http: reqwest::Client,
    pub token: Option<String>,
}

impl Client {
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: base_url.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            token: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base_url)
    }

    /// Sends a request; returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        self.call_with(method, path, body, &[]).await
    }

    /// Like [`call`](Self::call), with extra request headers (e.g.
    /// `Idempotency-Key`).
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let mut request = self.http.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// Like [`call`](Self::call) but fails unless the status is `expected`.
    pub async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        expected: u16,
    ) -> Result<Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if status != expected {
            bail!("{method} {path}: expected {expected}, got {status}: {value}");
        }
        Ok(value)
    }

    /// GETs `path` and insists on 200.
    pub async fn get(&self, path: &str) -> Result<Value> {
        self.expect(reqwest::Method::GET, path, None, 200).await
    }

    /// Signs up as a user would: registers, opens the confirmation link
    /// mailed to the address (from the local stack's SMTP sink), and keeps
    /// the session it starts.
    pub async fn sign_up(&mut self, username: &str) -> Result<()> {
        let password = PASSWORD;
        // Unique per run: the SMTP sink keeps earlier runs' mail.
        let email = format!("{username}+{}@example.test", uuid::Uuid::new_v4().simple());
        self.expect(
            reqwest::Method::POST,
            "/auth/register",
            Some(json!({"username": username, "email": email, "password": password})),
            202,
        )
        .await?;
        let mail = mailbox::wait_for_message(&email, 1).await;
        let tokens = self
            .expect(
                reqwest::Method::POST,
                "/auth/register/confirm",
                Some(json!({"token": mailbox::token_in(&mail), "password": password})),
                201,
            )
            .await?;
        self.token = Some(
            tokens["access_token"]
                .as_str()
                .context("an access token")?
                .to_owned(),
        );
        Ok(())
    }

    pub async fn create_app(&self, body: Value) -> Result<Value> {
        self.expect(reqwest::Method::POST, "/apps", Some(body), 201)
            .await
    }

    /// Starts a deployment; returns its id.
    pub async fn deploy(&self, app_id: &str, body: Value) -> Result<String> {
        let deployment = self
            .expect(
                reqwest::Method::POST,
                &format!("/apps/{app_id}/deployments"),
                Some(body),
                202,
            )
            .await?;
        Ok(deployment["id"]
            .as_str()
            .context("a deployment id")?
            .to_owned())
    }

    pub async fn deployment(&self, id: &str) -> Result<Value> {
        self.expect(
            reqwest::Method::GET,
            &format!("/deployments/{id}"),
            None,
            200,
        )
        .await
    }

    /// Polls until the deployment reaches a state that is not in progress.
    pub async fn wait_settled(&self, id: &str, within: Duration) -> Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let deployment = self.deployment(id).await?;
            let state = deployment["state"].as_str().unwrap_or_default();
            if !["queued", "cloning", "building", "pushing", "deploying"].contains(&state) {
                return Ok(deployment);
            }
            if Instant::now() > deadline {
                bail!("deployment {id} still {state} after {within:?}: {deployment}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens the app's log WebSocket from `from` and collects entries until
    /// `done` says so or `within` passes; returns what arrived.
    pub async fn log_socket(
        &self,
        app_id: &str,
        from: i64,
        within: Duration,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Result<Vec<Value>> {
        let url = self
            .url(&format!("/apps/{app_id}/logs/ws?from={from}"))
            .replacen("http", "ws", 1);
        let mut request = url.into_client_request()?;
        if let Some(token) = &self.token {
            request
                .headers_mut()
                .insert("authorization", format!("Bearer {token}").parse()?);
        }
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let mut entries = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while !done(&entries) {
            let frame = tokio::time::timeout_at(deadline, socket.next()).await;
            match frame {
                Err(_) => break,
                Ok(None) => bail!("the log socket closed after {} entries", entries.len()),
                Ok(Some(frame)) => match frame? {
                    Message::Text(text) => entries.push(serde_json::from_str(text.as_str())?),
                    Message::Close(reason) => bail!("the log socket closed: {reason:?}"),
                    _ => {}
                },
            }
        }
        let _ = socket.close(None).await;
        Ok(entries)
    }
}

/// The states a deployment went through, oldest first.
pub fn state_names(deployment: &Value) -> Result<Vec<&str>> {
    Ok(deployment["states"]
        .as_array()
        .context("a deployment lists its states")?
        .iter()
        .filter_map(|s| s["state"].as_str())
        .collect())
}

/// GETs `url` and returns the body; for talking to deployed apps.
pub async fn fetch_body(url: &str) -> Result<String> {
    Ok(app_get(url).await?.text().await?)
}

/// GETs `url`, an app's URL. A name under `localhost` is sent to this
/// machine with its `Host` header, as browsers do (glibc does not resolve
/// such names).
pub async fn app_get(url: &str) -> Result<reqwest::Response> {
    let parsed = reqwest::Url::parse(url)?;
    let mut client = reqwest::Client::builder();
    if let Some(host) = parsed
        .host_str()
        .filter(|host| host.ends_with(".localhost"))
    {
        // The URL's own port is used; only the address is set here.
        client = client.resolve(host, std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    Ok(client
        .build()?
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?)
}
