//! Every generated Dockerfile, built for real on the local base images and
//! run: the image must answer HTTP on `PORT`. (Python and static sites are
//! covered in build.rs.)

mod support;

use std::time::{Duration, Instant};
use support::*;

/// Builds `files` as a new app and returns what its image answers on `/`.
async fn build_and_serve(stack: &str, files: &[(&str, &str)], detected: &str) -> String {
    let harness = Harness::start(settings(true)).await;
    let repo = TestRepo::new();
    let sha = repo.commit(stack, files);
    let app = new_app(stack);
    let request = harness.request(&app, source(&repo.url(), "main"));
    let started = Instant::now();
    let deployment = harness.submit(&request).await;
    let seen = harness.outcome(deployment, Duration::from_secs(900)).await;
    if seen.deploy.is_none() {
        let lines = try_log_lines(app.id, deployment, "Build failed: ", Duration::from_secs(5))
            .await
            .unwrap_or_else(|lines| lines);
        let lines: Vec<String> = lines.into_iter().map(|r| r.line).collect();
        panic!("{seen:?}\n{lines:#?}");
    }
    eprintln!("{stack}: built and pushed in {:?}", started.elapsed());
    let lines = log_lines(app.id, deployment, "Pushed ").await;
    assert!(lines.iter().any(|r| r.line == detected), "{lines:#?}");
    let image = harness.image_repo(&app).tagged(&sha);
    serve_and_fetch(&harness, &image, request.config.port).await
}

#[tokio::test]
async fn a_node_app_is_installed_built_and_started_with_npm_start() {
    let package = r#"{
  "name": "hello",
  "version": "1.0.0",
  "private": true,
  "scripts": {
    "build": "node -e \"require('fs').writeFileSync('built.txt', 'built by npm run build')\"",
    "start": "node server.js"
  }
}
"#;
    let server = r#"const http = require("http");
const fs = require("fs");
http.createServer((req, res) => res.end("node: " + fs.readFileSync("built.txt") + "\n"))
  .listen(Number(process.env.PORT));
"#;
    let answer = build_and_serve(
        "node",
        &[("package.json", package), ("server.js", server)],
        "Detected Node.js app (package.json)",
    )
    .await;
    assert_eq!(answer, "node: built by npm run build\n");
}

#[tokio::test]
async fn a_go_app_is_compiled_and_its_binary_runs() {
    let main = r#"package main

import (
	"fmt"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "go: hello") })
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
"#;
    let answer = build_and_serve(
        "go",
        &[
            ("go.mod", "module example.com/hello\n\ngo 1.19\n"),
            ("main.go", main),
        ],
        "Detected Go app (go.mod)",
    )
    .await;
    assert_eq!(answer, "go: hello\n");
}

#[tokio::test]
async fn a_rust_app_is_compiled_in_release_mode_and_its_binary_runs() {
    let manifest = "[package]\nname = \"hello-web\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";
    let main = r#"use std::io::{Read, Write};
fn main() {
    let port = std::env::var("PORT").unwrap();
    let listener = std::net::TcpListener::bind(("0.0.0.0", port.parse::<u16>().unwrap())).unwrap();
    for stream in listener.incoming() {
        let mut stream = stream.unwrap();
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf);
        let body = "rust: hello\n";
        let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}", body.len(), body);
    }
}
"#;
    let answer = build_and_serve(
        "rust",
        &[("Cargo.toml", manifest), ("src/main.rs", main)],
        "Detected Rust app (Cargo.toml)",
    )
    .await;
    assert_eq!(answer, "rust: hello\n");
}
