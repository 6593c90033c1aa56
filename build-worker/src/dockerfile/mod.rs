//! What a repository's Dockerfile may ask of berth's builders. An
//! allowlist: each instruction and each of its flags is accepted only when
//! berth knows it to be safe in a sandboxed build, so a builder feature
//! added later is refused until someone decides about it. Refusals happen
//! before the build starts, with the line and a reason the app's owner can
//! act on.
//!
//! Why these rules:
//! * `RUN --mount` other than `type=cache` and `type=tmpfs` (and any
//!   `from=`/`source=`) can mount files from outside the build context: with
//!   a symlink in an earlier stage it mounted the build host's `/`
//!   (CVE-2024-1753 in the podman that Debian 12 ships).
//! * `RUN --network=host` and `--security=insecure` leave the sandbox.
//! * A flag whose value holds `$` is expanded from `ARG`s after this check
//!   could have seen it.
//! * `ADD <url>` is fetched by the builder itself: never from a literal
//!   address, `localhost` or an internal name.
//! * `ONBUILD` triggers run in a later build: they obey the same rules, and
//!   the triggers of a base image are checked before it is built upon.

mod parse;

pub use parse::{instruction, BadDirective, Dockerfile, Flag, Instruction};

use std::net::IpAddr;

/// Why a Dockerfile is refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct Refusal {
    pub line: usize,
    pub reason: String,
}

/// Images a build needs before it starts: its `FROM`s and `COPY --from`s
/// that are not stages of the same Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    pub base_images: Vec<String>,
}

const INSTRUCTIONS: [&str; 18] = [
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// Checks a whole Dockerfile.
pub fn check(text: &str) -> Result<Checked, Refusal> {
    let file =
        Dockerfile::parse(text).map_err(|BadDirective(reason)| Refusal { line: 1, reason })?;
    let mut checked = Checked::default();
    let mut stages: Vec<String> = Vec::new();
    let mut global_args: Vec<(String, String)> = Vec::new();
    let mut seen_from = false;
    for step in &file.instructions {
        check_instruction(step, false)?;
        match step.keyword.as_str() {
            "ARG" if !seen_from => global_args.extend(arg_defaults(&step.args)),
            "FROM" => {
                seen_from = true;
                let mut words = step.args.split_whitespace();
                let image = words.next().unwrap_or_default();
                let image = substitute(image, &global_args).ok_or_else(|| Refusal {
                    line: step.line,
                    reason: format!(
                        "`FROM {image}` uses a build argument without a default; berth needs to \
                         know the base image before the build starts"
                    ),
                })?;
                if !is_stage(&image, &stages) && image != "scratch" {
                    push_unique(&mut checked.base_images, image);
                }
                if let (Some(as_kw), Some(name)) = (words.next(), words.next()) {
                    if as_kw.eq_ignore_ascii_case("as") {
                        stages.push(name.to_ascii_lowercase());
                    }
                }
            }
            "COPY" => {
                if let Some(from) = flag(step, "from") {
                    if !is_stage(from, &stages) && from.parse::<usize>().is_err() {
                        push_unique(&mut checked.base_images, from.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    if !seen_from {
        return Err(Refusal {
            line: 1,
            reason: "the Dockerfile has no FROM instruction".to_owned(),
        });
    }
    Ok(checked)
}

/// Checks the `ONBUILD` triggers a base image carries: they run in this
/// build, so they obey the same rules as the Dockerfile's own lines.
pub fn check_triggers(image: &str, triggers: &[String]) -> Result<(), Refusal> {
    for trigger in triggers {
        let step = instruction(0, trigger, '\\');
        check_instruction(&step, true).map_err(|refusal| Refusal {
            line: 0,
            reason: format!(
                "the base image {image} has an ONBUILD trigger berth refuses (`{trigger}`): {}",
                refusal.reason
            ),
        })?;
    }
    Ok(())
}

fn check_instruction(step: &Instruction, triggered: bool) -> Result<(), Refusal> {
    let refuse = |reason: String| Refusal {
        line: step.line,
        reason,
    };
    let keyword = step.keyword.as_str();
    if !INSTRUCTIONS.contains(&keyword) {
        return Err(refuse(format!(
            "`{keyword}` is not an instruction berth builds"
        )));
    }
    if triggered && matches!(keyword, "FROM" | "ONBUILD" | "MAINTAINER") {
        return Err(refuse(format!("`ONBUILD {keyword}` is not allowed")));
    }
    let allowed: &[&str] = match keyword {
        "FROM" => &["platform"],
        "RUN" => &["mount", "network"],
        "COPY" => &["from", "chown", "chmod"],
        "ADD" => &["chown", "chmod"],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    };
    for flag in &step.flags {
        if !allowed.contains(&flag.name.as_str()) {
            return Err(refuse(format!(
                "`{keyword} --{}` is not allowed in berth's builds",
                flag.name
            )));
        }
        if flag.value.as_deref().is_some_and(|v| v.contains('$')) {
            return Err(refuse(format!(
                "`{keyword} --{}` takes its value from a variable; berth checks flags before the \
                 build, so write the value out",
                flag.name
            )));
        }
        match (keyword, flag.name.as_str()) {
            ("RUN", "mount") => check_mount(flag.value.as_deref().unwrap_or("")).map_err(refuse)?,
            ("RUN", "network") => {
                let value = flag.value.as_deref().unwrap_or("");
                if !matches!(value, "default" | "none") {
                    return Err(refuse(format!(
                        "`RUN --network={value}` would leave the build's own network; only \
                         `default` and `none` are allowed"
                    )));
                }
            }
            _ => {}
        }
    }
    match keyword {
        "ADD" => check_add(&step.args).map_err(refuse),
        "ONBUILD" => {
            let inner = instruction(step.line, &step.args, '\\');
            check_instruction(&inner, true)
        }
        _ => Ok(()),
    }
}

/// `--mount=type=cache,target=/root/.cache`: only caches and tmpfs, never
/// a mount whose contents come from elsewhere.
fn check_mount(spec: &str) -> Result<(), String> {
    let mut kind = "bind";
    let mut keys = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        let key = key.trim().to_ascii_lowercase();
        if key == "type" {
            kind = value.trim();
        } else {
            keys.push(key);
        }
    }
    let allowed: &[&str] = match kind {
        "cache" => &[
            "target",
            "dst",
            "destination",
            "id",
            "sharing",
            "mode",
            "uid",
            "gid",
            "ro",
            "readonly",
        ],
        "tmpfs" => &["target", "dst", "destination", "size", "tmpfs-size"],
        other => {
            return Err(format!(
                "`RUN --mount=type={other}` can bring files from outside the build into it; \
                 berth allows `type=cache` and `type=tmpfs` mounts only"
            ))
        }
    };
    match keys.iter().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(format!(
            "`RUN --mount=type={kind}` does not allow `{key}` in berth's builds"
        )),
        None => Ok(()),
    }
}

/// `ADD` sources that are URLs are fetched by the builder: only http(s)
/// from a public name.
fn check_add(args: &str) -> Result<(), String> {
    let words: Vec<String> = if args.trim_start().starts_with('[') {
        serde_json::from_str(args).map_err(|_| "`ADD [...]` is not a valid JSON list".to_owned())?
    } else {
        args.split_whitespace().map(str::to_owned).collect()
    };
    let sources = &words[..words.len().saturating_sub(1)];
    for source in sources {
        if source.contains('$') {
            return Err(format!(
                "`ADD {source}` takes its source from a variable; write it out, or use COPY"
            ));
        }
        let Some((scheme, rest)) = source.split_once("://") else {
            if source.starts_with("git@") {
                return Err(format!(
                    "`ADD {source}`: berth's builds do not add Git repositories"
                ));
            }
            continue;
        };
        if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
            return Err(format!(
                "`ADD {source}`: only http and https URLs can be added"
            ));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.contains('@') {
            return Err(format!(
                "`ADD {source}`: URLs with credentials are not added"
            ));
        }
        let host = host_of(authority).to_ascii_lowercase();
        let internal = host.parse::<IpAddr>().is_ok()
            || host == "localhost"
            || [
                ".localhost",
                ".local",
                ".internal",
                ".svc",
                ".cluster.local",
            ]
            .iter()
            .any(|suffix| host.ends_with(suffix))
            || !host.contains('.');
        if internal {
            return Err(format!(
                "`ADD {source}` names an address or an internal host; builds fetch only from \
                 public names"
            ));
        }
    }
    Ok(())
}

/// `host:port`, `[v6]:port` → the host.
fn host_of(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or("");
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

fn flag<'a>(step: &'a Instruction, name: &str) -> Option<&'a str> {
    step.flags
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.value.as_deref())
}

fn is_stage(name: &str, stages: &[String]) -> bool {
    stages.contains(&name.to_ascii_lowercase())
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// `ARG NAME=value ...` → its defaults (unquoted).
fn arg_defaults(args: &str) -> Vec<(String, String)> {
    args.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.trim_matches(['"', '\'']).to_owned()))
        .collect()
}

/// Expands `$NAME` and `${NAME}` from `args`; `None` when one is unknown.
fn substitute(text: &str, args: &[(String, String)]) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find('}')?;
                (&inner[..end], &inner[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let (name, default) = match name.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (name, None),
        };
        let value = args
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        out.push_str(value.or(default)?);
        rest = tail;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests;
