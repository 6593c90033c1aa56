//! What a grant may do: Docker's token scopes (`repository:<name>:<actions>`)
//! against berth's repository layout, `<prefix><tenant>/<app>` for app
//! images and `<prefix>cache/<tenant>` for a tenant's Kaniko layer cache.

use super::grant::{Access, Grant};
use serde::{Deserialize, Serialize};

/// One `type:name:actions` a client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// `repository:acme/web:pull,push`. The name sits between the first and
    /// the last colon (a `repository(plugin)` type or a name with a port
    /// would have more); `None` for anything that is not three parts.
    pub fn parse(text: &str) -> Option<Self> {
        let (kind, rest) = text.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            actions: actions
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Every scope of the `scope` parameters: one parameter may carry
    /// several, separated by spaces (as Distribution's own challenges do).
    pub fn parse_all<'a>(params: impl IntoIterator<Item = &'a str>) -> Result<Vec<Self>, String> {
        params
            .into_iter()
            .flat_map(str::split_whitespace)
            .map(|text| Self::parse(text).ok_or_else(|| format!("`{text}` is not a scope")))
            .collect()
    }
}

/// An entry of a token's `access` claim: exactly what the registry allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceActions {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// Tenant names that can never hold a grant: `cache` would own every
/// tenant's layer cache (`cache/<tenant>` reads as its app `<tenant>`).
const RESERVED_TENANTS: [&str; 1] = ["cache"];

/// A tenant name berth could have made: a DNS-1123 label.
fn is_tenant(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !RESERVED_TENANTS.contains(&name)
}

/// One path component of a repository name, as Distribution spells them.
fn is_component(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Where a registry's berth repositories live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryLayout {
    /// `""`, or the path under the registry host with a trailing `/`
    /// (`berth/` for `BERTH_REGISTRY=registry.example.com/berth`).
    prefix: String,
}

impl RepositoryLayout {
    /// From `BERTH_REGISTRY` (`host[:port][/prefix]`) or a bare prefix.
    pub fn from_registry(registry: &str) -> Self {
        let registry = registry.trim().trim_end_matches('/');
        let prefix = registry.split_once('/').map_or("", |(_, path)| path);
        Self::with_prefix(prefix)
    }

    pub fn with_prefix(prefix: &str) -> Self {
        let prefix = prefix.trim().trim_matches('/');
        Self {
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    /// The actions of `wanted` that `grant` holds on `name`: push grants
    /// push and pull their tenant's app images and layer cache, pull grants
    /// pull their tenant's app images; everything else, nothing.
    pub fn allowed(&self, grant: &Grant, name: &str) -> &'static [&'static str] {
        if !is_tenant(&grant.tenant) {
            return &[];
        }
        let Some(rest) = name.strip_prefix(&self.prefix) else {
            return &[];
        };
        let app_image = rest
            .strip_prefix(&grant.tenant)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(is_component);
        let cache = rest
            .strip_prefix("cache/")
            .is_some_and(|tenant| tenant == grant.tenant);
        match grant.access {
            Access::Push if app_image || cache => &["pull", "push"],
            Access::Pull if app_image => &["pull"],
            _ => &[],
        }
    }

    /// The `access` claim for `scopes`: what each asks that the grant
    /// holds; scopes that get nothing are left out.
    pub fn access(&self, grant: &Grant, scopes: &[Scope]) -> Vec<ResourceActions> {
        let mut granted: Vec<ResourceActions> = Vec::new();
        for scope in scopes.iter().filter(|s| s.kind == "repository") {
            let allowed = self.allowed(grant, &scope.name);
            let actions: Vec<String> = allowed
                .iter()
                .filter(|a| scope.actions.iter().any(|w| w == **a || w == "*"))
                .map(|a| (*a).to_owned())
                .collect();
            if actions.is_empty() {
                continue;
            }
            match granted.iter_mut().find(|g| g.name == scope.name) {
                Some(entry) => {
                    for action in actions {
                        if !entry.actions.contains(&action) {
                            entry.actions.push(action);
                        }
                    }
                    entry.actions.sort();
                }
                None => granted.push(ResourceActions {
                    kind: "repository".to_owned(),
                    name: scope.name.clone(),
                    actions,
                }),
            }
        }
        granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(tenant: &str, access: Access) -> Grant {
        Grant {
            tenant: tenant.into(),
            access,
            expires_at: i64::MAX,
        }
    }

    fn scopes(text: &str) -> Vec<Scope> {
        Scope::parse_all([text]).unwrap()
    }

    #[test]
    fn scopes_are_parsed_one_or_several_a_parameter() {
        assert_eq!(
            Scope::parse("repository:acme/web:pull,push"),
            Some(Scope {
                kind: "repository".into(),
                name: "acme/web".into(),
                actions: vec!["pull".into(), "push".into()]
            })
        );
        assert_eq!(
            Scope::parse_all(["repository:a/b:pull repository:cache/a:push,pull"])
                .unwrap()
                .len(),
            2
        );
        assert!(Scope::parse_all(["nonsense"]).is_err());
        assert!(Scope::parse("repository::pull").is_none());
    }

    #[test]
    fn a_push_grant_holds_its_tenants_apps_and_cache_only() {
        let layout = RepositoryLayout::from_registry("127.0.0.1:5000");
        let push = grant("a", Access::Push);
        assert_eq!(layout.allowed(&push, "a/web"), ["pull", "push"]);
        assert_eq!(layout.allowed(&push, "cache/a"), ["pull", "push"]);
        for name in [
            "b/web",
            "cache/b",
            "cache/ab",
            "ab/web",
            "a",
            "a/",
            "a/web/x",
            "a/../b",
            "cache/a/x",
            "web",
        ] {
            assert!(layout.allowed(&push, name).is_empty(), "{name}");
        }
    }

    #[test]
    fn a_pull_grant_only_pulls_its_tenants_apps() {
        let layout = RepositoryLayout::from_registry("127.0.0.1:5000");
        let pull = grant("a", Access::Pull);
        assert_eq!(layout.allowed(&pull, "a/web"), ["pull"]);
        assert!(layout.allowed(&pull, "cache/a").is_empty());
        assert!(layout.allowed(&pull, "b/web").is_empty());
        assert_eq!(
            layout.access(&pull, &scopes("repository:a/web:pull,push")),
            [ResourceActions {
                kind: "repository".into(),
                name: "a/web".into(),
                actions: vec!["pull".into()]
            }]
        );
        assert!(layout
            .access(&pull, &scopes("repository:a/web:push"))
            .is_empty());
    }

    #[test]
    fn the_registry_prefix_is_part_of_every_name() {
        let layout = RepositoryLayout::from_registry("registry.example.com/berth/");
        let push = grant("a", Access::Push);
        assert_eq!(layout.allowed(&push, "berth/a/web"), ["pull", "push"]);
        assert_eq!(layout.allowed(&push, "berth/cache/a"), ["pull", "push"]);
        assert!(layout.allowed(&push, "a/web").is_empty());
        assert!(layout.allowed(&push, "other/a/web").is_empty());
    }

    #[test]
    fn reserved_and_invalid_tenants_hold_nothing() {
        let layout = RepositoryLayout::from_registry("r");
        // A tenant `cache` would otherwise push to every tenant's layer cache.
        let cache = grant("cache", Access::Push);
        assert!(layout.allowed(&cache, "cache/victim").is_empty());
        for tenant in ["", "A", "a/b", "-a", "a.b"] {
            assert!(
                layout
                    .allowed(&grant(tenant, Access::Push), &format!("{tenant}/web"))
                    .is_empty(),
                "{tenant}"
            );
        }
    }

    #[test]
    fn the_access_claim_names_only_what_was_asked_and_held() {
        let layout = RepositoryLayout::from_registry("r");
        let push = grant("a", Access::Push);
        let access = layout.access(
            &push,
            &scopes(
                "repository:a/web:push repository:a/web:pull repository:b/web:pull,push \
                 registry:catalog:* repository:cache/a:*",
            ),
        );
        let names: Vec<(&str, Vec<&str>)> = access
            .iter()
            .map(|a| {
                (
                    a.name.as_str(),
                    a.actions.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("a/web", vec!["pull", "push"]),
                ("cache/a", vec!["pull", "push"])
            ]
        );
    }
}
