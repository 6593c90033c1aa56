//! A fake Kubernetes API server for tests, after kube-rs/controller-rs: the
//! code under test gets a real [`kube::Client`] whose transport is a
//! `tower_test` mock, and the test plays the API server one request at a
//! time: it asserts each request (method, path, query, field manager, body)
//! and answers it. A request that does not come within the timeout fails the
//! test (a missing call); [`ApiServer::done`] fails it on one too many.
//!
//! Besides JSON answers it can stream a body (watches, `follow=true` logs)
//! and accept a WebSocket upgrade (`pods/attach`, `pods/exec`): the upgrade
//! goes through a real HTTP/1.1 exchange over an in-memory pipe, because kube
//! takes the upgraded connection from hyper and nothing else can make one.

use bytes::Bytes;
use futures::StreamExt;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};
use tokio_tungstenite::WebSocketStream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;
/// The API server's end of an upgraded connection.
pub type ServerSocket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;
type Handle = tower_test::mock::Handle<Request<kube::client::Body>, Response<ResponseBody>>;

/// The field manager berth applies with.
pub const FIELD_MANAGER: &str = "berth";

/// A fake API server and the client that talks to it.
pub fn pair() -> (kube::Client, ApiServer) {
    let (service, handle) =
        tower_test::mock::pair::<Request<kube::client::Body>, Response<ResponseBody>>();
    let client = kube::Client::new(service, "default");
    let server = ApiServer {
        handle,
        early: VecDeque::new(),
        timeout: Duration::from_secs(10),
    };
    (client, server)
}

/// The test's end: receives the client's requests in order.
pub struct ApiServer {
    handle: Handle,
    /// Requests that came before the one [`ApiServer::expect_unordered`]
    /// waited for.
    early: VecDeque<Call>,
    timeout: Duration,
}

impl ApiServer {
    /// How long to wait for each expected request (10 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn receive(&mut self) -> Option<Call> {
        let (request, respond) = self.handle.next_request().await?;
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .expect("the request body can be read")
            .to_bytes();
        Some(Call {
            method: parts.method,
            uri: parts.uri,
            headers: parts.headers,
            body,
            respond,
        })
    }

    /// The next request, whatever it is; `what` names it in the failure.
    pub async fn next(&mut self, what: &str) -> Call {
        if let Some(call) = self.early.pop_front() {
            return call;
        }
        match tokio::time::timeout(self.timeout, self.receive()).await {
            Ok(Some(call)) => call,
            Ok(None) => panic!("expected {what}, but the client was dropped"),
            Err(_) => panic!(
                "expected {what}, but no request came within {:?}",
                self.timeout
            ),
        }
    }

    /// The next request, which must be `method path` (path without query).
    pub async fn expect(&mut self, method: Method, path: &str) -> Call {
        let what = format!("{method} {path}");
        let call = self.next(&what).await;
        assert!(
            call.method == method && call.path() == path,
            "expected {what}, got {} {}",
            call.method,
            call.uri
        );
        call
    }

    /// A request `method path` that may come before or after others made
    /// concurrently (a watch beside a log stream); the others are kept for
    /// later `expect*` calls.
    pub async fn expect_unordered(&mut self, method: Method, path: &str) -> Call {
        if let Some(index) = self
            .early
            .iter()
            .position(|call| call.method == method && call.path() == path)
        {
            return self.early.remove(index).expect("the index is in range");
        }
        let what = format!("{method} {path}");
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let call = match tokio::time::timeout_at(deadline, self.receive()).await {
                Ok(Some(call)) => call,
                Ok(None) => panic!("expected {what}, but the client was dropped"),
                Err(_) => panic!(
                    "expected {what}, but it did not come within {:?}; meanwhile: {:?}",
                    self.timeout,
                    self.early.iter().map(Call::describe).collect::<Vec<_>>()
                ),
            };
            if call.method == method && call.path() == path {
                return call;
            }
            self.early.push_back(call);
        }
    }

    /// Fails if a request is left over or comes within `grace`.
    pub async fn done_within(mut self, grace: Duration) {
        let leftover: Vec<_> = self.early.iter().map(Call::describe).collect();
        assert!(leftover.is_empty(), "unexpected requests: {leftover:?}");
        if let Ok(Some(call)) = tokio::time::timeout(grace, self.receive()).await {
            panic!("unexpected request {}", call.describe());
        }
    }

    /// Fails if a request is left over or comes within 100 ms.
    pub async fn done(self) {
        self.done_within(Duration::from_millis(100)).await
    }
}

/// One request the client made, waiting for its answer.
pub struct Call {
    pub method: Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    respond: tower_test::mock::SendResponse<Response<ResponseBody>>,
}

impl Call {
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    fn describe(&self) -> String {
        format!("{} {}", self.method, self.uri)
    }

    /// A query parameter, decoded.
    pub fn query(&self, key: &str) -> Option<String> {
        url::form_urlencoded::parse(self.uri.query().unwrap_or("").as_bytes())
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.into_owned())
    }

    pub fn assert_query(self, key: &str, expected: &str) -> Self {
        assert_eq!(
            self.query(key).as_deref(),
            Some(expected),
            "query `{key}` of {}",
            self.describe()
        );
        self
    }

    /// The body as JSON; fails the test when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("the body of {} is not JSON: {error}", self.describe()))
    }

    /// A server-side apply by berth: `PATCH` with the apply content type,
    /// field manager `berth`, and `force` (berth owns what it applies).
    pub fn assert_server_side_apply(self) -> Self {
        assert_eq!(self.method, Method::PATCH, "{}", self.describe());
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok()),
            Some("application/apply-patch+yaml"),
            "content type of {}",
            self.describe()
        );
        self.assert_query("fieldManager", FIELD_MANAGER)
            .assert_query("force", "true")
    }

    /// The JSON body's value at `pointer` (RFC 6901, e.g. `/spec/replicas`).
    pub fn assert_body(self, pointer: &str, expected: impl Serialize) -> Self {
        let expected = serde_json::to_value(expected).expect("the expected value is JSON");
        let body = self.json();
        assert_eq!(
            body.pointer(pointer),
            Some(&expected),
            "`{pointer}` in the body of {}: {body:#}",
            self.describe()
        );
        self
    }

    /// The JSON body's value at `pointer` satisfies `check` (for values
    /// that are not known in advance, such as a timestamp).
    pub fn assert_body_matches(
        self,
        pointer: &str,
        check: impl FnOnce(&serde_json::Value) -> bool,
    ) -> Self {
        let body = self.json();
        let value = body.pointer(pointer);
        assert!(
            value.is_some_and(check),
            "`{pointer}` in the body of {}: {body:#}",
            self.describe()
        );
        self
    }

    pub fn respond(self, status: StatusCode, body: impl Serialize) {
        let body = serde_json::to_vec(&body).expect("the answer is JSON");
        let response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .body(
                Full::new(Bytes::from(body))
                    .map_err(Into::into)
                    .boxed_unsync(),
            )
            .expect("a valid response");
        self.respond.send_response(response);
    }

    pub fn respond_json(self, body: impl Serialize) {
        self.respond(StatusCode::OK, body)
    }

    /// Answers an apply the way the API server does: the applied object,
    /// with the fields the server sets.
    pub fn respond_applied(self) {
        let mut object = self.json();
        let metadata = &mut object["metadata"];
        metadata["resourceVersion"] = json!("1");
        metadata["uid"] = json!(uuid::Uuid::new_v4().to_string());
        metadata["generation"] = json!(1);
        self.respond_json(object)
    }

    /// A `metav1.Status` failure, as the API server sends one.
    pub fn respond_status(self, code: u16, reason: &str, message: &str) {
        let status = StatusCode::from_u16(code).expect("a valid status code");
        self.respond(
            status,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": message, "reason": reason, "code": code,
            }),
        )
    }

    pub fn respond_not_found(self) {
        let message = format!("{} not found", self.path());
        self.respond_status(404, "NotFound", &message)
    }

    /// Answers 200 with a body the test goes on writing to: watch events or
    /// followed log lines. Dropping the writer ends the body.
    pub fn respond_stream(self) -> StreamWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let body = StreamBody::new(UnboundedReceiverStream::new(rx).map(Ok::<_, BoxError>));
        let response = Response::builder()
            .status(StatusCode::OK)
            .body(BodyExt::boxed_unsync(body))
            .expect("a valid response");
        self.respond.send_response(response);
        StreamWriter { tx }
    }

    /// Accepts a WebSocket upgrade (attach, exec) with the first channel
    /// protocol the client offers, and returns the server's end.
    pub async fn respond_upgrade(self) -> ServerSocket {
        let offered = self
            .headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let protocol = offered.split(',').next().unwrap_or("").trim().to_owned();
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let (upgraded_tx, upgraded_rx) = oneshot::channel();
        let upgraded_tx = std::sync::Mutex::new(Some(upgraded_tx));
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let key = request
                .headers()
                .get(header::SEC_WEBSOCKET_KEY)
                .map(|key| derive_accept_key(key.as_bytes()))
                .unwrap_or_default();
            if let Some(tx) = upgraded_tx.lock().expect("not poisoned").take() {
                tokio::spawn(async move {
                    let _ = tx.send(hyper::upgrade::on(request).await);
                });
            }
            let response = Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(header::CONNECTION, "Upgrade")
                .header(header::UPGRADE, "websocket")
                .header(header::SEC_WEBSOCKET_ACCEPT, key)
                .header(header::SEC_WEBSOCKET_PROTOCOL, protocol.as_str())
                .body(Empty::<Bytes>::new());
            async move { response }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), service)
                .with_upgrades(),
        );
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(client_io))
                .await
                .expect("an in-memory HTTP/1.1 handshake");
        tokio::spawn(connection.with_upgrades());
        let mut forwarded = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone());
        for (name, value) in &self.headers {
            forwarded = forwarded.header(name, value);
        }
        let forwarded = forwarded
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        let response = sender
            .send_request(forwarded)
            .await
            .expect("the in-memory upgrade answers");
        self.respond
            .send_response(response.map(|body| body.map_err(Into::into).boxed_unsync()));
        let upgraded = upgraded_rx
            .await
            .expect("the upgrade was taken")
            .expect("the connection upgrades");
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await
    }
}

/// Writes a streamed answer; see [`Call::respond_stream`].
pub struct StreamWriter {
    tx: mpsc::UnboundedSender<Frame<Bytes>>,
}

impl StreamWriter {
    /// Writes `line` and a newline; false once the client went away.
    pub fn line(&self, line: &str) -> bool {
        self.tx
            .send(Frame::data(Bytes::from(format!("{line}\n"))))
            .is_ok()
    }

    /// Writes one watch event: `{"type": kind, "object": object}`.
    pub fn event(&self, kind: &str, object: impl Serialize) -> bool {
        let event = json!({ "type": kind, "object": object });
        self.line(&event.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::SinkExt;
    use k8s_openapi::api::core::v1::{ConfigMap, Pod};
    use kube::api::{Api, AttachParams, Patch, PatchParams};
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::Message;

    #[tokio::test]
    async fn an_apply_is_asserted_and_answered() {
        let (client, mut server) = pair();
        let api: Api<ConfigMap> = Api::namespaced(client, "berth-acme");
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}});
        let call = tokio::spawn(async move {
            api.patch(
                "x",
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&config),
            )
            .await
        });
        server
            .expect(Method::PATCH, "/api/v1/namespaces/berth-acme/configmaps/x")
            .await
            .assert_server_side_apply()
            .assert_body("/data/a", "1")
            .respond_applied();
        let applied = call.await.unwrap().unwrap();
        assert_eq!(applied.metadata.resource_version.as_deref(), Some("1"));
        server.done().await;
    }

    #[tokio::test]
    #[should_panic(expected = "no request came")]
    async fn a_missing_request_fails_the_test() {
        let (_client, mut server) = pair();
        server = server.with_timeout(Duration::from_millis(50));
        server.expect(Method::GET, "/api/v1/pods").await;
    }

    #[tokio::test]
    #[should_panic(expected = "unexpected request")]
    async fn an_extra_request_fails_the_test() {
        let (client, server) = pair();
        let api: Api<Pod> = Api::namespaced(client, "x");
        tokio::spawn(async move { api.get("p").await });
        server.done().await;
    }

    #[tokio::test]
    async fn an_attach_carries_stdin_over_the_upgraded_socket() {
        let (client, mut server) = pair();
        let api: Api<Pod> = Api::namespaced(client, "berth-acme-build");
        let attach = tokio::spawn(async move {
            let params = AttachParams::default()
                .stdin(true)
                .stdout(false)
                .stderr(false);
            let mut process = api.attach("kaniko", &params).await.unwrap();
            let status = process.take_status().unwrap();
            let mut stdin = process.stdin().unwrap();
            stdin.write_all(b"context").await.unwrap();
            stdin.shutdown().await.unwrap();
            drop(stdin);
            process.join().await.unwrap();
            status.await
        });
        let call = server
            .expect(
                Method::GET,
                "/api/v1/namespaces/berth-acme-build/pods/kaniko/attach",
            )
            .await
            .assert_query("stdin", "true");
        let mut socket = call.respond_upgrade().await;
        let mut received = Vec::new();
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Binary(data) = message {
                if data.first() == Some(&0) {
                    received.extend_from_slice(&data[1..]);
                    if received.len() >= 7 {
                        break;
                    }
                }
            }
        }
        assert_eq!(received, b"context");
        let mut status = vec![3];
        status.extend_from_slice(br#"{"metadata":{},"status":"Success"}"#);
        socket.send(Message::Binary(status.into())).await.unwrap();
        socket.close(None).await.ok();
        let status = attach.await.unwrap().unwrap();
        assert_eq!(status.status.as_deref(), Some("Success"));
    }
}
