use super::*;

fn refused(text: &str) -> Refusal {
    check(text).expect_err(text)
}

/// The CVE-2024-1753 shape: a bind mount from a stage holding a link to `/`.
const HOST_ROOT_MOUNT: &str = "FROM localhost/berth/python:bookworm AS base
RUN ln -s / /rootlink
FROM base
RUN --mount=type=bind,from=base,source=/rootlink,target=/mnt ls /mnt
";

#[test]
fn ordinary_dockerfiles_pass_and_name_their_base_images() {
    let checked = check(
        "# syntax=docker/dockerfile:1
ARG PY=3.12
FROM python:${PY}-slim AS build
RUN --mount=type=cache,target=/root/.cache,sharing=locked pip install -r requirements.txt
RUN --network=none make test
FROM build AS test
FROM gcr.io/distroless/base
COPY --from=build --chown=1000:1000 /app /app
COPY --from=0 /x /x
COPY --from=busybox:1.37 /bin/busybox /bin/
ADD https://example.com/file.tar.gz /opt/
HEALTHCHECK --interval=30s CMD curl -f http://localhost/ || exit 1
ONBUILD COPY . /app
EXPOSE 8080
CMD [\"/app/server\"]
",
    )
    .unwrap();
    assert_eq!(
        checked.base_images,
        ["python:3.12-slim", "gcr.io/distroless/base", "busybox:1.37"]
    );
    assert!(check("FROM scratch\nCOPY x /x\n")
        .unwrap()
        .base_images
        .is_empty());
    assert_eq!(
        check("ARG BASE\nFROM ${BASE:-alpine}\n")
            .unwrap()
            .base_images,
        ["alpine"]
    );
}

#[test]
fn the_host_root_mount_is_refused_before_the_build() {
    let refusal = refused(HOST_ROOT_MOUNT);
    assert_eq!(refusal.line, 4);
    assert!(refusal.reason.contains("type=bind"), "{refusal}");
    // No type means a bind mount.
    assert!(refused("FROM x\nRUN --mount=target=/mnt,source=/ ls\n")
        .reason
        .contains("type=bind"));
    // A cache mount seeded from a stage is the same escape.
    assert!(
        refused("FROM x\nRUN --mount=type=cache,from=base,source=/rootlink,target=/mnt ls\n")
            .reason
            .contains("`from`")
    );
    assert!(
        refused("FROM x\nRUN --mount=type=cache,target=/c,bind-propagation=shared ls\n")
            .reason
            .contains("bind-propagation")
    );
    for kind in ["secret", "ssh"] {
        assert!(refused(&format!("FROM x\nRUN --mount=type={kind} ls\n"))
            .reason
            .contains(kind));
    }
}

#[test]
fn refusals_hold_through_continuations_and_the_escape_directive() {
    let continued = "FROM x AS base\nRUN --mount=type=cache,target=/c \\\n  # comment\n  --mount=type=bind,from=base,source=/rootlink,target=/mnt \\\n  ls /mnt\n";
    assert_eq!(refused(continued).line, 2);
    let backtick =
        "# escape=`\nFROM x AS base\nRUN --mount=type=bind,`\n    from=base,source=/rootlink,target=/mnt ls\n";
    assert!(refused(backtick).reason.contains("type=bind"));
    let quoted = "FROM x\nRUN --mount=\"type=bind\",from=x ls\n";
    assert!(refused(quoted).reason.contains("type=bind"));
}

#[test]
fn flags_from_build_arguments_are_refused() {
    let refusal = refused("ARG T=cache\nFROM x\nARG T=bind\nRUN --mount=type=$T,target=/mnt ls\n");
    assert_eq!(refusal.line, 4);
    assert!(refusal.reason.contains("variable"), "{refusal}");
    assert!(refused("FROM x\nARG N=host\nRUN --network=${N} curl x\n")
        .reason
        .contains("variable"));
    assert!(refused("FROM x\nRUN --$F=host ls\n")
        .reason
        .contains("not allowed"));
}

#[test]
fn leaving_the_sandbox_network_is_refused() {
    let refusal = refused("FROM x\nRUN --network=host curl http://127.0.0.1:9092\n");
    assert!(refusal.reason.contains("--network=host"), "{refusal}");
    assert!(refused("FROM x\nRUN --security=insecure ls\n")
        .reason
        .contains("--security"));
    assert!(check("FROM x\nRUN --network=none ls\n").is_ok());
}

#[test]
fn add_from_the_host_or_internal_names_is_refused() {
    for source in [
        "http://127.0.0.1:8080/healthz",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:5000/v2/",
        "https://registry.berth-system.svc/x",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://backend:8080/",
        "https://user:secret@example.com/x",
        "ftp://example.com/x",
        "$URL",
    ] {
        let refusal = refused(&format!("FROM x\nADD {source} /x\n"));
        assert_eq!(refusal.line, 2, "{source}");
    }
    assert!(refused("FROM x\nADD [\"http://10.0.0.1/x\", \"/x\"]\n")
        .reason
        .contains("10.0.0.1"));
    assert!(refused("FROM x\nADD git@github.com:a/b.git /src\n")
        .reason
        .contains("Git"));
    assert!(check("FROM x\nADD --chown=1:1 app.tar.gz https://pypi.org/simple/ /x/\n").is_ok());
}

#[test]
fn onbuild_triggers_obey_the_same_rules() {
    let refusal = refused("FROM x\nONBUILD RUN --mount=type=bind,from=y,source=/,target=/m ls\n");
    assert_eq!(refusal.line, 2);
    assert!(refused("FROM x\nONBUILD ONBUILD RUN ls\n")
        .reason
        .contains("ONBUILD ONBUILD"));
    assert!(refused("FROM x\nONBUILD FROM y\n")
        .reason
        .contains("ONBUILD FROM"));
    // A trigger that takes a flag from a later build's ARG is refused here.
    assert!(refused("FROM x\nONBUILD RUN --mount=type=$T ls\n")
        .reason
        .contains("variable"));
    let image = "docker.io/someone/base:1";
    let error = check_triggers(
        image,
        &[
            "RUN --mount=type=bind,from=base,source=/rootlink,target=/mnt cat /mnt/etc/shadow"
                .into(),
        ],
    )
    .unwrap_err();
    assert!(error.reason.contains(image), "{error}");
    assert!(check_triggers(image, &["COPY . /app".into(), "RUN make".into()]).is_ok());
}

#[test]
fn unknown_instructions_and_flags_are_refused() {
    assert!(refused("FROM x\nFETCH http://x /y\n")
        .reason
        .contains("FETCH"));
    assert!(refused("FROM x\nCOPY --link . /app\n")
        .reason
        .contains("--link"));
    assert!(refused("FROM x\nENV --x=1 A=b\n").reason.contains("--x"));
    assert!(refused("RUN ls\n").reason.contains("no FROM"));
    assert!(refused("FROM ${NOPE}\n")
        .reason
        .contains("without a default"));
    assert!(refused("# escape=x\nFROM a\n").reason.contains("escape"));
}
