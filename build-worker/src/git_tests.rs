use super::*;

fn key() -> SecretKey {
    SecretKey::from_base64(&SecretKey::generate_base64()).unwrap()
}

fn app() -> AppRef {
    AppRef {
        id: uuid::Uuid::now_v7(),
        name: "web".into(),
        tenant: "acme".into(),
    }
}

fn source(url: &str) -> Source {
    Source {
        repo_url: url.into(),
        git_ref: "main".into(),
        commit: None,
        subdirectory: None,
        token: None,
    }
}

fn public() -> SourcePolicy {
    SourcePolicy::default()
}

fn local(root: &std::path::Path) -> SourcePolicy {
    SourcePolicy {
        repos: berth_common::repo_policy::RepoPolicy {
            allow_local: true,
            local_root: Some(root.to_path_buf()),
        },
        ..SourcePolicy::default()
    }
}

fn spec(
    src: &Source,
    app: &AppRef,
    key: &SecretKey,
    policy: &SourcePolicy,
) -> Result<RepoSpec, BuildError> {
    RepoSpec::new(src, app, key, policy)
}

#[test]
fn https_is_allowed_and_local_repositories_only_when_enabled_and_inside_the_root() {
    let (key, app) = (key(), app());
    let ok = spec(&source("https://github.com/a/b.git"), &app, &key, &public()).unwrap();
    assert!(!ok.local);
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("app");
    std::fs::create_dir(&repo).unwrap();
    for url in [
        format!("file://{}", repo.display()),
        repo.display().to_string(),
    ] {
        let error = spec(&source(&url), &app, &key, &public()).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("local repositories are not allowed on this server"),
            "{error}"
        );
        let allowed = spec(&source(&url), &app, &key, &local(root.path())).unwrap();
        assert!(allowed.local);
        assert_eq!(allowed.url, url);
        assert_eq!(
            allowed.fetch_url(),
            repo.canonicalize().unwrap().display().to_string()
        );
    }
    let error = spec(&source("http://example.com/a.git"), &app, &key, &public()).unwrap_err();
    assert!(error.to_string().contains("use an https:// URL"), "{error}");
    for url in [
        "git@github.com:a/b.git",
        "ssh://git@github.com/a/b",
        "git://x/y",
    ] {
        let error = spec(&source(url), &app, &key, &local(root.path())).unwrap_err();
        assert!(error.to_string().contains("https://"), "{url}: {error}");
    }
    assert!(spec(&source("relative/path"), &app, &key, &local(root.path())).is_err());
    assert!(spec(&source("https://"), &app, &key, &public()).is_err());
}

/// L4: a local path outside the root, or a symlink out of it, is refused;
/// a missing folder is not found.
#[test]
fn local_repositories_outside_the_root_are_refused() {
    let (key, app) = (key(), app());
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/etc", root.path().join("etc")).unwrap();
    let policy = local(root.path());
    for url in [
        "/etc".to_owned(),
        "file:///root".to_owned(),
        root.path().join("etc").display().to_string(),
    ] {
        let error = spec(&source(&url), &app, &key, &policy).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("local repositories must be inside"),
            "{url}: {error}"
        );
    }
    let missing = root.path().join("missing").display().to_string();
    assert!(matches!(
        spec(&source(&missing), &app, &key, &policy),
        Err(BuildError::RepositoryNotFound { .. })
    ));
}

/// L1: the build-worker refuses internal hosts itself, whatever the
/// message says.
#[test]
fn internal_hosts_are_refused_unless_local() {
    let (key, app) = (key(), app());
    for url in [
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.1/o/r.git",
        "https://kubernetes.default.svc/o/r",
        "http://127.0.0.1:8080/o/r",
    ] {
        let error = spec(&source(url), &app, &key, &public()).unwrap_err();
        assert!(
            matches!(error, BuildError::UrlRefused { .. }),
            "{url}: {error}"
        );
    }
    let root = tempfile::tempdir().unwrap();
    assert!(spec(
        &source("http://127.0.0.1:8080/o/r"),
        &app,
        &key,
        &local(root.path())
    )
    .is_ok());
}

#[test]
fn credentials_in_urls_are_never_shown() {
    assert_eq!(
        redact("https://bob:s3cret@git.example.com/a/b.git"),
        "https://git.example.com/a/b.git"
    );
    assert_eq!(redact("file:///srv/app"), "file:///srv/app");
    let error = spec(
        &source("http://bob:s3cret@example.com/a.git"),
        &app(),
        &key(),
        &public(),
    )
    .unwrap_err();
    assert!(!error.to_string().contains("s3cret"), "{error}");
}

#[test]
fn the_token_is_opened_for_the_app_and_hidden_from_debug_output() {
    let (key, app) = (key(), app());
    let mut src = source("https://github.com/a/b");
    src.token = Some(key.seal(&Binding::build_token(&app.tenant, app.id), b"ghp_secret\n"));
    let spec = RepoSpec::new(&src, &app, &key, &public()).unwrap();
    assert!(matches!(&spec.token, Some(Token(t)) if t == "ghp_secret"));
    assert!(!format!("{spec:?}").contains("ghp_secret"));
    assert_eq!(spec.scrub("failed for ghp_secret"), "failed for ***");

    let error = RepoSpec::new(&src, &app, &self::key(), &public()).unwrap_err();
    assert!(matches!(error, BuildError::TokenUnreadable));
    // Sealed for another app's builds (a message that copied it): refused.
    let error = RepoSpec::new(&src, &self::app(), &key, &public()).unwrap_err();
    assert!(matches!(error, BuildError::TokenUnreadable));
}

/// M8/S4: a message naming another host with the owner's token does not
/// get the token sent there.
#[test]
fn a_token_for_a_repository_off_the_configured_github_is_dropped() {
    let (key, app) = (key(), app());
    for url in [
        "https://evil.example/r.git",
        "https://github.com.evil.example/o/r",
        "https://github.com:8443/o/r",
    ] {
        let mut src = source(url);
        src.token = Some(key.seal(&Binding::build_token(&app.tenant, app.id), b"ghp_secret"));
        let spec = RepoSpec::new(&src, &app, &key, &public()).unwrap();
        assert!(spec.token.is_none(), "{url}");
    }
}

/// S4: the credentials callback answers only the repository's own origin,
/// whatever URL libgit2 asks for (after a redirect, another host).
#[test]
fn the_credentials_callback_refuses_another_host() {
    let (key, app) = (key(), app());
    let mut src = source("https://github.com/o/r.git");
    src.token = Some(key.seal(&Binding::build_token(&app.tenant, app.id), b"ghp_secret"));
    let spec = RepoSpec::new(&src, &app, &key, &public()).unwrap();
    let ask = |url: &str| credentials_for(&spec, url, None, CredentialType::USER_PASS_PLAINTEXT);
    assert_eq!(
        ask("https://github.com/o/r.git/info/refs"),
        Ok(("x-access-token", "ghp_secret"))
    );
    for url in [
        "https://evil.example/o/r.git",
        "http://github.com/o/r.git",
        "https://github.com:444/o/r.git",
    ] {
        let refused = ask(url).unwrap_err();
        assert_eq!(refused, "another host asks for the credentials", "{url}");
    }
}

#[test]
fn a_commit_must_look_like_a_sha() {
    let (key, app) = (key(), app());
    let mut src = source("https://github.com/a/b");
    src.commit = Some("  ABCDEF1 ".into());
    let spec = RepoSpec::new(&src, &app, &key, &public()).unwrap();
    assert_eq!(spec.commit.as_deref(), Some("abcdef1"));
    assert_eq!(spec.wanted(), "abcdef1");
    src.commit = Some("main; rm -rf /".into());
    let error = RepoSpec::new(&src, &app, &key, &public()).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("commit `main; rm -rf /` was not found"),
        "{error}"
    );
}

fn heads() -> Vec<(String, String)> {
    [
        ("HEAD", "1111"),
        ("refs/heads/main", "1111"),
        ("refs/heads/dev", "2222"),
        ("refs/tags/v1", "3333"),
        ("refs/tags/v1^{}", "4444"),
        ("refs/tags/light", "5555"),
        ("refs/pull/7/head", "6666"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b.to_owned()))
    .collect()
}

#[test]
fn refs_resolve_to_branches_then_peeled_tags() {
    let heads = heads();
    let found = |wanted: &str| find_ref(&heads, wanted);
    assert_eq!(found("dev"), Some(("refs/heads/dev".into(), "2222".into())));
    assert_eq!(
        found("v1"),
        Some(("refs/tags/v1".into(), "4444".into())),
        "annotated tags peel"
    );
    assert_eq!(
        found("light"),
        Some(("refs/tags/light".into(), "5555".into()))
    );
    assert_eq!(
        found("refs/pull/7/head"),
        Some(("refs/pull/7/head".into(), "6666".into()))
    );
    assert_eq!(found(""), Some(("refs/heads/main".into(), "1111".into())));
    assert_eq!(
        found("HEAD"),
        Some(("refs/heads/main".into(), "1111".into()))
    );
    assert_eq!(found("nope"), None);
    assert_eq!(
        found("main:refs/heads/x"),
        None,
        "only advertised names match"
    );
}

#[test]
fn git_errors_become_reasons_a_user_can_act_on() {
    let (key, app) = (key(), app());
    let spec = RepoSpec::new(&source("https://github.com/a/b"), &app, &key, &public()).unwrap();
    let auth = git2::Error::new(ErrorCode::Auth, ErrorClass::Http, "asked for credentials");
    assert!(matches!(
        classify(&auth, &spec),
        BuildError::RepositoryNotFound { .. }
    ));
    let mut with_token = source("https://github.com/a/b");
    with_token.token = Some(key.seal(&Binding::build_token(&app.tenant, app.id), b"t0ken"));
    let spec_t = RepoSpec::new(&with_token, &app, &key, &public()).unwrap();
    assert_eq!(
        classify(&auth, &spec_t).to_string(),
        "authentication to https://github.com/a/b failed: check that the token is valid and can read the repository"
    );
    let missing = git2::Error::new(
        ErrorCode::GenericError,
        ErrorClass::Http,
        "unexpected http status code: 404",
    );
    assert!(matches!(
        classify(&missing, &spec),
        BuildError::RepositoryNotFound { .. }
    ));
    let other = git2::Error::new(ErrorCode::GenericError, ErrorClass::Net, "t0ken reset");
    assert_eq!(
        classify(&other, &spec_t).to_string(),
        "cloning https://github.com/a/b failed: *** reset"
    );
}
