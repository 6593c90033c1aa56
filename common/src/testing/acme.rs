//! A DNS server and an ACME certificate authority of a test's own, the
//! ones Let's Encrypt tests its clients with (Debian's `pebble` package):
//! `pebble-challtestsrv` answers DNS with the records a test sets (TXT
//! proofs; every name resolves to 127.0.0.1), and `pebble` issues
//! certificates after validating challenges against the router, resolving
//! names through that DNS. Each on free ports, so tests run side by side.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestDns {
    child: Child,
    /// Where it answers DNS (UDP and TCP): `BERTH_DNS_RESOLVER`.
    pub address: SocketAddr,
    management: u16,
}

impl TestDns {
    pub async fn start() -> Self {
        let dns = super::free_port();
        let management = super::free_port();
        let child = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            // Only IPv4: the test's router listens on 127.0.0.1.
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv runs (the stack installs Debian's pebble)");
        let this = Self {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], dns)),
            management,
        };
        wait_for_port(management).await;
        this
    }

    /// Makes `name` hold one TXT record, `value`.
    pub async fn set_txt(&self, name: &str, value: &str) {
        self.manage(
            "set-txt",
            serde_json::json!({"host": fqdn(name), "value": value}),
        )
        .await;
    }

    pub async fn clear_txt(&self, name: &str) {
        self.manage("clear-txt", serde_json::json!({"host": fqdn(name)}))
            .await;
    }

    async fn manage(&self, path: &str, body: serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/{path}", self.management))
            .json(&body)
            .send()
            .await
            .expect("challtestsrv's management API answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

impl Drop for TestDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct TestAcme {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    /// `BERTH_ACME_DIRECTORY`.
    pub directory: String,
    /// The CA of the directory's own HTTPS: `BERTH_ACME_TRUSTED_ROOTS`.
    pub trusted_roots: PathBuf,
    port: u16,
    management: u16,
}

impl Default for TestAcme {
    fn default() -> Self {
        Self::new()
    }
}

impl TestAcme {
    /// A certificate authority to be: its ports, directory URL and the
    /// roots of its HTTPS are known before it runs, so berth can be
    /// started with them first (see [`run`](Self::run)).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (roots, _, _) = directory_certificate(dir.path());
        let port = super::free_port();
        Self {
            child: None,
            directory: format!("https://127.0.0.1:{port}/dir"),
            trusted_roots: roots,
            management: super::free_port(),
            port,
            _dir: dir,
        }
    }

    /// Runs it, validating HTTP-01 challenges on `http_port` and
    /// TLS-ALPN-01 on `tls_port` (the router's), names resolved by `dns`.
    pub async fn run(mut self, dns: &TestDns, http_port: u16, tls_port: u16) -> Self {
        let dir = self._dir.path();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{}", self.port),
            "managementListenAddress": format!("127.0.0.1:{}", self.management),
            "certificate": dir.join("cert.pem"), "privateKey": dir.join("key.pem"),
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &dns.address.to_string(), "-strict=false"])
            // No random pauses before validating; no nonces refused at
            // random (a client's retry is not what these tests are about).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble runs (the stack installs it)");
        self.child = Some(child);
        wait_for_port(self.port).await;
        self
    }

    /// The root certificate (PEM) everything this authority issues chains
    /// to, from its management API: made fresh at each start.
    pub async fn root(&self) -> String {
        let roots = std::fs::read(&self.trusted_roots).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&roots).unwrap())
            .build()
            .unwrap();
        client
            .get(format!("https://127.0.0.1:{}/roots/0", self.management))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("pebble's management API answers")
            .text()
            .await
            .unwrap()
    }
}

impl Drop for TestAcme {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, for the ACME
/// directory's HTTPS (with openssl, which the stack installs).
fn directory_certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
    let (cert, key, csr) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("leaf.csr"),
    );
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl runs");
        assert!(status.success(), "openssl {args:?}");
    };
    let p = |path: &Path| path.display().to_string();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p(&ca_key),
        "-out",
        &p(&ca),
        "-days",
        "2",
        "-subj",
        "/CN=berth test ACME directory CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &p(&key),
        "-out",
        &p(&csr),
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&ca),
        "-CAkey",
        &p(&ca_key),
        "-CAcreateserial",
        "-out",
        &p(&cert),
        "-days",
        "2",
        "-extfile",
        &p(&ext),
    ]);
    (ca, cert, key)
}

async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}
