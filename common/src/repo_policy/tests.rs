use super::*;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Answers from a table; a name not in it does not resolve. No network.
struct Table(HashMap<&'static str, Vec<IpAddr>>);

#[async_trait]
impl Resolver for Table {
    async fn resolve(&self, host: &str, _port: u16) -> std::io::Result<Vec<IpAddr>> {
        self.0
            .get(host)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such host"))
    }
}

fn table() -> Table {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    Table(HashMap::from([
        ("github.com", vec![ip("140.82.121.4")]),
        ("git.example.com", vec![ip("93.184.215.14"), ip("10.1.2.3")]),
        ("metadata.example.com", vec![ip("169.254.169.254")]),
        ("v6.example.com", vec![ip("fd00:ec2::254")]),
        ("mapped.example.com", vec![ip("::ffff:127.0.0.1")]),
    ]))
}

fn public() -> RepoPolicy {
    RepoPolicy::default()
}

fn refusal(policy: &RepoPolicy, url: &str) -> String {
    policy.check(url).unwrap_err().to_string()
}

#[test]
fn https_to_a_public_host_passes() {
    for url in [
        "https://github.com/o/r.git",
        "https://140.82.121.4/o/r",
        "https://[2606:4700::1111]/o/r",
        "https://git.example.com:8443/o/r",
    ] {
        assert!(
            matches!(public().check(url), Ok(RepoSource::Remote(_))),
            "{url}"
        );
    }
}

#[test]
fn internal_addresses_and_names_are_refused() {
    for (url, why) in [
        ("https://10.0.0.1/x", "a private address"),
        ("https://172.16.5.4/x", "a private address"),
        ("https://192.168.1.1/x", "a private address"),
        ("https://127.0.0.1/x", "a loopback address"),
        ("https://127.1/x", "a loopback address"),
        ("https://0x7f000001/x", "a loopback address"),
        ("https://0.0.0.0/x", "a non-routable address"),
        (
            "https://169.254.169.254/latest",
            "the cloud metadata address",
        ),
        ("https://169.254.10.1/x", "a link-local address"),
        ("https://100.64.0.1/x", "a shared (CGNAT) address"),
        ("https://[::1]/x", "a loopback address"),
        ("https://[fd00:ec2::254]/x", "the cloud metadata address"),
        ("https://[fc00::1]/x", "a private (unique local) address"),
        ("https://[fe80::1]/x", "a link-local address"),
        ("https://[::ffff:10.0.0.1]/x", "a private address"),
        (
            "https://[64:ff9b::a9fe:a9fe]/x",
            "the cloud metadata address",
        ),
        ("https://[2002:7f00:1::]/x", "a loopback address"),
        ("https://localhost/x", "a loopback name"),
        ("https://a.b.localhost/x", "a loopback name"),
        (
            "https://kubernetes.default.svc/x",
            "a cluster-internal name",
        ),
        (
            "https://api.default.svc.cluster.local/x",
            "a cluster-internal name",
        ),
        ("https://metadata.google.internal/x", "an internal name"),
        (
            "https://gitlab/x",
            "a name without a domain (an internal name)",
        ),
        ("https://GITHUB.COM./x", ""),
    ] {
        if why.is_empty() {
            assert!(public().check(url).is_ok(), "{url}");
            continue;
        }
        let reason = refusal(&public(), url);
        assert!(
            reason.contains(why) && reason.ends_with("repositories must be on public hosts"),
            "{url}: {reason}"
        );
    }
}

#[test]
fn plain_http_and_odd_urls_are_refused() {
    assert!(refusal(&public(), "http://localhost/o/r").contains("plain http://"));
    assert!(refusal(&public(), "http://127.0.0.1:3000/o/r").contains("plain http://"));
    assert!(refusal(&public(), "http://github.com/o/r").contains("use an https:// URL"));
    assert!(refusal(&public(), "ssh://git@github.com/o/r").contains("not ssh://"));
    assert!(refusal(&public(), "git@github.com:o/r.git").contains("https://"));
    assert_eq!(
        refusal(&public(), "https://u:p@github.com/o/r"),
        "credentials do not belong in the URL"
    );
    assert_eq!(
        refusal(&public(), "https://tok@github.com/o/r"),
        "credentials do not belong in the URL"
    );
    assert!(public().check("relative/path").is_err());
}

#[tokio::test]
async fn names_resolving_to_internal_addresses_are_refused() {
    let resolver = table();
    let check = |url: &'static str| {
        let resolver = &resolver;
        async move { public().check_resolved(url, resolver).await }
    };
    assert!(check("https://github.com/o/r").await.is_ok());
    for (url, address) in [
        ("https://git.example.com/o/r", "10.1.2.3"),
        ("https://metadata.example.com/o/r", "169.254.169.254"),
        ("https://v6.example.com/o/r", "fd00:ec2::254"),
        ("https://mapped.example.com/o/r", "::ffff:127.0.0.1"),
    ] {
        let reason = check(url).await.unwrap_err().to_string();
        assert!(
            reason.contains(&format!("resolves to {address}")),
            "{reason}"
        );
    }
    assert_eq!(
        check("https://nowhere.example.com/o/r").await.unwrap_err(),
        RepoRefusal::Unresolvable {
            host: "nowhere.example.com".into()
        }
    );
    // IP literals need no resolution.
    assert!(check("https://140.82.121.4/o/r").await.is_ok());
}

#[tokio::test]
async fn local_development_allows_internal_hosts_and_plain_http() {
    let local = RepoPolicy {
        allow_local: true,
        local_root: None,
    };
    for url in [
        "http://127.0.0.1:3000/o/r",
        "http://localhost/o/r",
        "https://10.0.0.1/o/r",
        "https://git.example.com/o/r",
    ] {
        assert!(local.check_resolved(url, &table()).await.is_ok(), "{url}");
    }
}

#[test]
fn local_folders_need_local_mode_and_the_root() {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("app");
    std::fs::create_dir(&repo).unwrap();
    let repo_url = format!("file://{}", repo.display());
    assert_eq!(
        public().check(&repo_url).unwrap_err(),
        RepoRefusal::LocalDisabled
    );
    let no_root = RepoPolicy {
        allow_local: true,
        local_root: None,
    };
    assert_eq!(
        no_root.check(repo.to_str().unwrap()).unwrap_err(),
        RepoRefusal::NoLocalRoot
    );
    let policy = RepoPolicy {
        allow_local: true,
        local_root: Some(root.path().to_path_buf()),
    };
    let real = repo.canonicalize().unwrap();
    assert_eq!(policy.check(&repo_url), Ok(RepoSource::Local(real.clone())));
    assert_eq!(
        policy.check(repo.to_str().unwrap()),
        Ok(RepoSource::Local(real))
    );
    // Not there yet: judged by its spelling.
    let later = root.path().join("later");
    assert!(policy.check(later.to_str().unwrap()).is_ok());

    let outside = format!(
        "local repositories must be inside {}",
        root.path().display()
    );
    for path in [
        "/etc".to_owned(),
        "file:///etc".to_owned(),
        root.path().display().to_string(),
        format!("{}/app/../../etc", root.path().display()),
        format!("{}x/app", root.path().display()),
        "file://otherhost/srv/app".to_owned(),
    ] {
        let reason = policy.check(&path).map(|_| ()).unwrap_err().to_string();
        let path = path.as_str();
        assert!(
            reason.starts_with(&outside) || reason.starts_with("use an https://"),
            "{path}: {reason}"
        );
    }
}

#[test]
fn a_symlink_out_of_the_root_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), root.path().join("escape")).unwrap();
    std::os::unix::fs::symlink("/etc", root.path().join("etc")).unwrap();
    let policy = RepoPolicy {
        allow_local: true,
        local_root: Some(root.path().to_path_buf()),
    };
    for link in ["escape", "etc"] {
        let path = root.path().join(link);
        assert!(
            matches!(
                policy.check(path.to_str().unwrap()),
                Err(RepoRefusal::OutsideRoot { .. })
            ),
            "{link}"
        );
    }
}

#[test]
fn addresses_inside_ipv6_are_judged_by_their_ipv4() {
    let mapped = |v4: Ipv4Addr| IpAddr::V6(v4.to_ipv6_mapped());
    assert_eq!(
        internal_ip(mapped(Ipv4Addr::new(192, 168, 0, 1))),
        Some("a private address")
    );
    assert_eq!(internal_ip(mapped(Ipv4Addr::new(8, 8, 8, 8))), None);
    assert_eq!(
        internal_ip(IpAddr::V6("64:ff9b::808:808".parse::<Ipv6Addr>().unwrap())),
        None
    );
    assert_eq!(
        internal_ip(IpAddr::V6("2001:db8::1".parse().unwrap())),
        Some("a documentation address")
    );
    assert_eq!(
        internal_ip(IpAddr::V6("2606:4700::1111".parse().unwrap())),
        None
    );
}
