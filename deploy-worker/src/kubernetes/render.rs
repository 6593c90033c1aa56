//! `berth-deploy-worker render`: prints, as YAML, exactly what the driver
//! applies for a release, given as a file or as flags (like `helm
//! template`). Env vars are given in clear (`--env-file`, `--env`), since a
//! release's sealed env cannot be opened without the key.

use anyhow::Context;
use berth_proto::{AppRef, Release, ReleaseConfig, Resources, Sealed};
use clap::Args;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use uuid::Uuid;

use super::{plan, KubernetesSettings, PullSecret};
use berth_common::registry_auth::Credentials;

const RELEASE_FLAGS: [&str; 9] = [
    "tenant",
    "app",
    "app_id",
    "release_id",
    "image",
    "port",
    "replicas",
    "cpu_millis",
    "memory_mb",
];

/// A release and the cluster settings to render it with. Ids default to the
/// nil UUID, so renders of the same input compare equal.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// The release as JSON: a `Release`, or a `deploy.requested` payload
    /// (`{"release": …}`). Its sealed env is ignored.
    #[arg(long, value_name = "FILE", conflicts_with_all = RELEASE_FLAGS)]
    pub release: Option<PathBuf>,
    /// The tenant's slug: the app runs in `berth-<tenant>`.
    #[arg(long, required_unless_present = "release")]
    pub tenant: Option<String>,
    /// The app's name.
    #[arg(long, required_unless_present = "release")]
    pub app: Option<String>,
    #[arg(long, default_value_t = Uuid::nil())]
    pub app_id: Uuid,
    #[arg(long, default_value_t = Uuid::nil())]
    pub release_id: Uuid,
    /// The image, by digest: `<registry>/<tenant>/<app>@sha256:…`.
    #[arg(long, required_unless_present = "release")]
    pub image: Option<String>,
    /// The port the app listens on (given to it as `PORT`).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    #[arg(long, default_value_t = 1)]
    pub replicas: u32,
    /// CPU in millicores; the tenant default when not given.
    #[arg(long)]
    pub cpu_millis: Option<u32>,
    /// Memory in MiB; the tenant default when not given.
    #[arg(long)]
    pub memory_mb: Option<u32>,
    /// The deployment the objects are labelled with.
    #[arg(long, default_value_t = Uuid::nil())]
    pub deployment_id: Uuid,
    /// Env vars in clear, one `KEY=VALUE` a line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// One env var; wins over `--env-file`. Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env_var)]
    pub env: Vec<(String, String)>,
    /// berth's registry (BERTH_REGISTRY of the worker): renders the tenant's
    /// image pull Secret, whose grant is minted at each deploy (shown here
    /// as a placeholder).
    #[arg(long, value_name = "HOST[:PORT][/PREFIX]")]
    pub registry: Option<String>,
    #[command(flatten)]
    pub settings: KubernetesSettings,
}

/// The YAML stream of [`plan`] for `args`: one document per object, each
/// starting with `---`.
pub fn render(args: &RenderArgs) -> anyhow::Result<String> {
    let release = release_of(args)?;
    let env = env_of(args)?;
    let pull = args.registry.as_deref().map(|registry| PullSecret {
        registry: registry.split('/').next().unwrap_or(registry).to_owned(),
        credentials: Credentials {
            username: format!("pull.{}", release.app.tenant),
            password: PLACEHOLDER_GRANT.to_owned(),
        },
    });
    to_yaml(&plan(
        &release,
        args.deployment_id,
        &env,
        &args.settings,
        pull.as_ref(),
    ))
}

/// What a rendered pull Secret shows for the grant each deploy mints.
pub const PLACEHOLDER_GRANT: &str = "<a pull grant minted at each deploy>";

pub fn to_yaml(documents: &[Value]) -> anyhow::Result<String> {
    let mut out = String::new();
    for document in documents {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(document)?);
    }
    Ok(out)
}

/// The release from `--release` or from the flags.
pub fn release_of(args: &RenderArgs) -> anyhow::Result<Release> {
    let Some(path) = &args.release else {
        let missing = |flag: &str| anyhow::anyhow!("--{flag} is required without --release");
        return Ok(Release {
            id: args.release_id,
            app: AppRef {
                id: args.app_id,
                name: args.app.clone().ok_or_else(|| missing("app"))?,
                tenant: args.tenant.clone().ok_or_else(|| missing("tenant"))?,
            },
            commit: String::new(),
            image: args.image.clone().ok_or_else(|| missing("image"))?,
            config: ReleaseConfig {
                port: args.port,
                env: no_env(),
                env_version: 0,
                replicas: args.replicas,
                resources: Resources {
                    cpu_millis: args.cpu_millis,
                    memory_mb: args.memory_mb,
                },
                health_check_path: None,
            },
        });
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the release {}", path.display()))?;
    let mut value: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    if let Some(release) = value.get_mut("release") {
        value = release.take();
    }
    if let Some(config) = value.get_mut("config").and_then(Value::as_object_mut) {
        config
            .entry("env")
            .or_insert_with(|| serde_json::to_value(no_env()).expect("sealed is JSON"));
    }
    serde_json::from_value(value).with_context(|| format!("{} is not a release", path.display()))
}

fn no_env() -> Sealed {
    Sealed {
        format: berth_proto::sealed::BOUND_FORMAT,
        nonce: String::new(),
        ciphertext: String::new(),
    }
}

/// `--env-file`, then `--env` on top.
pub fn env_of(args: &RenderArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    if let Some(path) = &args.env_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the env file {}", path.display()))?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = parse_env_var(line)
                .map_err(|error| anyhow::anyhow!("{}:{}: {error}", path.display(), number + 1))?;
            env.insert(key, value);
        }
    }
    env.extend(args.env.iter().cloned());
    Ok(env)
}

/// `KEY=VALUE`; a value in matching quotes loses them.
pub fn parse_env_var(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    let key = key.trim().trim_start_matches("export ").trim();
    if key.is_empty() {
        return Err(format!("`{text}` has no key"));
    }
    let quoted = value.len() >= 2
        && ((value.starts_with('"') && value.ends_with('"'))
            || (value.starts_with('\'') && value.ends_with('\'')));
    let value = if quoted {
        &value[1..value.len() - 1]
    } else {
        value
    };
    Ok((key.to_owned(), value.to_owned()))
}
