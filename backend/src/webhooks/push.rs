//! GitHub's `push` event, and whether a push deploys an app. Only what
//! berth reads is declared; GitHub sends much more.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

/// A push older than this is refused even when its signature is good:
/// GitHub lets a delivery be redelivered for 3 days, and berth remembers
/// deliveries for longer than this (`DELIVERY_RETENTION`), so an old signed
/// delivery cannot be replayed once it has been forgotten.
pub const MAX_PUSH_AGE: Duration = Duration::days(7);

/// GitHub may cut long lists short; with this many commits (the historical
/// cap of 20), or file lists this long, the lists are not trusted to be
/// complete and the push deploys.
const TRUNCATED_COMMITS: usize = 20;
const TRUNCATED_FILES: usize = 3000;

#[derive(Debug, Deserialize)]
pub struct PushEvent {
    /// `refs/heads/<branch>` or `refs/tags/<tag>`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit the ref points to after the push; all zeros when deleted.
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    /// The pushed commits, each with the files it touched.
    #[serde(default)]
    pub commits: Vec<PushCommit>,
    pub repository: Repository,
    /// The pushed head commit; null when the push deleted the ref.
    pub head_commit: Option<HeadCommit>,
    pub pusher: Option<Pusher>,
    pub sender: Option<Sender>,
}

#[derive(Debug, Deserialize)]
pub struct PushCommit {
    pub added: Option<Vec<String>>,
    pub removed: Option<Vec<String>>,
    pub modified: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub struct HeadCommit {
    pub id: Option<String>,
    pub message: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Repository {
    pub full_name: Option<String>,
    pub html_url: Option<String>,
    pub clone_url: Option<String>,
    /// In push events, Unix seconds of this push.
    pub pushed_at: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Pusher {
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Sender {
    pub login: Option<String>,
}

impl PushEvent {
    /// Reads a push payload; the message says what is wrong with it.
    pub fn parse(json: &[u8]) -> Result<Self, String> {
        let push: Self = serde_json::from_slice(json).map_err(|e| e.to_string())?;
        let after = &push.after;
        if after.len() != 40 || !after.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("`after` is not a 40-digit commit SHA".into());
        }
        Ok(push)
    }

    /// The message of the commit deployed (`after`), when GitHub sent it.
    pub fn head_message(&self) -> Option<&str> {
        self.head_commit
            .as_ref()
            .filter(|head| head.id.as_deref() == Some(self.after.as_str()))
            .and_then(|head| head.message.as_deref())
    }

    /// Who pushed: the GitHub login of the sender, else the pusher's name.
    pub fn pushed_by(&self) -> Option<&str> {
        self.sender
            .as_ref()
            .and_then(|sender| sender.login.as_deref())
            .or_else(|| self.pusher.as_ref().and_then(|p| p.name.as_deref()))
    }

    fn pushed_at(&self) -> Option<DateTime<Utc>> {
        let seconds = self.repository.pushed_at.as_ref()?.as_i64()?;
        DateTime::from_timestamp(seconds, 0)
    }

    /// Whether some pushed file is under `dir`; true when GitHub's lists
    /// cannot tell (no commits listed, lists absent or possibly truncated).
    fn touches(&self, dir: &str) -> bool {
        let dir = dir.trim_start_matches("./").trim_end_matches('/');
        if dir.is_empty() || dir == "." {
            return true;
        }
        if self.commits.is_empty() || self.commits.len() >= TRUNCATED_COMMITS {
            return true;
        }
        self.commits.iter().any(|commit| {
            let lists = [&commit.added, &commit.removed, &commit.modified];
            lists.iter().any(|list| match list {
                None => true,
                Some(files) if files.len() >= TRUNCATED_FILES => true,
                Some(files) => files.iter().any(|file| {
                    file.strip_prefix(dir)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                }),
            })
        })
    }
}

/// The app a push is checked against.
pub struct Target<'a> {
    pub repo_url: &'a str,
    pub branch: &'a str,
    pub subdirectory: Option<&'a str>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Build and deploy exactly this commit (lowercase hex).
    Deploy(String),
    /// Do nothing, for this reason.
    Ignore(String),
}

/// How two spellings of one repository are recognised as the same:
/// `https://GitHub.com/o/r.git/` → `github.com/o/r`, host and path,
/// lowercase (GitHub's names are case-insensitive), without `.git`.
///
/// A local repository (an absolute path or a `file://` URL, allowed only
/// with BERTH_ALLOW_LOCAL_REPOS) has no host: its key is `file://` and the
/// path as it is (file systems are case-sensitive, and `x.git` may be
/// another folder than `x`), so `/srv/r` and `file:///srv/r/` match each
/// other and a push whose `clone_url` names that path, and nothing on a host.
pub fn repo_key(url: &str) -> Option<String> {
    let url = url.trim();
    if url.starts_with('/') {
        return local_key(url);
    }
    let url = url::Url::parse(url).ok()?;
    if url.scheme() == "file" {
        return local_key(url.path());
    }
    let host = url.host_str().filter(|host| !host.is_empty())?;
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    Some(format!("{host}{path}").to_ascii_lowercase())
}

fn local_key(path: &str) -> Option<String> {
    let path = path.trim_end_matches('/');
    (!path.is_empty()).then(|| format!("file://{path}"))
}

pub fn decide(push: &PushEvent, app: &Target<'_>, now: DateTime<Utc>) -> Decision {
    let ignore = |reason: String| Decision::Ignore(reason);
    let repository = &push.repository;
    let wanted = repo_key(app.repo_url);
    let pushed = [&repository.html_url, &repository.clone_url]
        .into_iter()
        .flatten()
        .filter_map(|url| repo_key(url))
        .collect::<Vec<_>>();
    if wanted.is_none() || !pushed.iter().any(|key| Some(key) == wanted.as_ref()) {
        let name = repository
            .full_name
            .as_deref()
            .unwrap_or("another repository");
        return ignore(format!(
            "the push is to {name}, not to the app's repository {}",
            app.repo_url
        ));
    }
    let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
        return ignore(match push.git_ref.strip_prefix("refs/tags/") {
            Some(tag) => format!("tag pushes do not deploy (tag {tag})"),
            None => format!("{} is not a branch", push.git_ref),
        });
    };
    if branch != app.branch {
        return ignore(format!(
            "branch {branch} is not the app's branch {}",
            app.branch
        ));
    }
    if push.deleted || push.after.bytes().all(|b| b == b'0') {
        return ignore(format!("branch {branch} was deleted"));
    }
    if let Some(at) = push.pushed_at() {
        if now - at > MAX_PUSH_AGE {
            return ignore(format!(
                "the push was made at {at}, more than {} days ago",
                MAX_PUSH_AGE.num_days()
            ));
        }
    }
    if let Some(dir) = app.subdirectory {
        if !push.touches(dir) {
            return ignore(format!("no pushed file is under the app's folder {dir}/"));
        }
    }
    Decision::Deploy(push.after.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "0D1A26E67D8F5EAF1F6BA5C57FC3C7D91AC0FD1C";

    fn push(changes: serde_json::Value) -> PushEvent {
        let mut value = json!({
            "ref": "refs/heads/main", "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": SHA, "created": false, "deleted": false,
            "commits": [{"id": SHA.to_lowercase(), "added": [], "removed": [],
                         "modified": ["api/app.py"]}],
            "repository": {"full_name": "Codertocat/Hello-World",
                           "html_url": "https://github.com/Codertocat/Hello-World",
                           "clone_url": "https://github.com/Codertocat/Hello-World.git",
                           "pushed_at": Utc::now().timestamp()},
            "pusher": {"name": "Codertocat"}, "sender": {"login": "Codertocat"}
        });
        for (key, change) in changes.as_object().unwrap() {
            value[key] = change.clone();
        }
        PushEvent::parse(value.to_string().as_bytes()).unwrap()
    }

    fn app(subdirectory: Option<&str>) -> Target<'_> {
        Target {
            repo_url: "https://GitHub.com/codertocat/hello-world.git",
            branch: "main",
            subdirectory,
        }
    }

    fn ignored(decision: Decision) -> String {
        match decision {
            Decision::Ignore(reason) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_push_to_the_branch_deploys_its_head_commit() {
        let decision = decide(&push(json!({})), &app(None), Utc::now());
        assert_eq!(decision, Decision::Deploy(SHA.to_lowercase()));
        assert_eq!(push(json!({})).pushed_by(), Some("Codertocat"));
    }

    #[test]
    fn other_refs_deletions_and_other_repositories_are_ignored() {
        let now = Utc::now();
        let other = push(json!({"ref": "refs/heads/dev"}));
        assert!(ignored(decide(&other, &app(None), now)).contains("branch dev"));
        let tag = push(json!({"ref": "refs/tags/v1.0"}));
        assert!(ignored(decide(&tag, &app(None), now)).contains("tag"));
        let deleted = push(json!({"deleted": true, "after": "0".repeat(40)}));
        assert!(ignored(decide(&deleted, &app(None), now)).contains("deleted"));
        let elsewhere = push(json!({"repository": {"full_name": "o/fork",
            "html_url": "https://github.com/o/fork", "clone_url": "https://github.com/o/fork.git"}}));
        assert!(ignored(decide(&elsewhere, &app(None), now)).contains("o/fork"));
        let old = push(
            json!({"repository": {"html_url": "https://github.com/Codertocat/Hello-World",
            "pushed_at": 1557933657}}),
        );
        assert!(ignored(decide(&old, &app(None), now)).contains("days ago"));
    }

    #[test]
    fn a_push_outside_the_apps_folder_is_ignored_unless_the_lists_may_be_cut() {
        let now = Utc::now();
        let inside = push(json!({}));
        for dir in ["api", "api/", "./api"] {
            assert!(matches!(
                decide(&inside, &app(Some(dir)), now),
                Decision::Deploy(_)
            ));
        }
        // `api-docs/x` is not under `api/`.
        let outside = push(json!({"commits": [
            {"added": ["README.md"], "removed": [], "modified": ["api-docs/x.md"]}]}));
        assert!(ignored(decide(&outside, &app(Some("api")), now)).contains("api/"));
        // No lists, no commits, or 20 commits: GitHub may not have told everything.
        let unlisted = push(json!({"commits": [{"id": "x"}]}));
        assert!(matches!(
            decide(&unlisted, &app(Some("api")), now),
            Decision::Deploy(_)
        ));
        let none = push(json!({"commits": []}));
        assert!(matches!(
            decide(&none, &app(Some("api")), now),
            Decision::Deploy(_)
        ));
        let commit = json!({"added": [], "removed": [], "modified": ["docs/x.md"]});
        let many = push(json!({"commits": vec![commit; 20]}));
        assert!(matches!(
            decide(&many, &app(Some("api")), now),
            Decision::Deploy(_)
        ));
    }

    #[test]
    fn spellings_of_one_repository_share_a_key() {
        let key = repo_key("https://github.com/codertocat/hello-world");
        assert_eq!(key.as_deref(), Some("github.com/codertocat/hello-world"));
        for same in [
            "https://GitHub.com/Codertocat/Hello-World.git",
            " https://github.com/Codertocat/Hello-World/ ",
            "http://github.com/Codertocat/Hello-World.git/",
        ] {
            assert_eq!(repo_key(same), key, "{same}");
        }
        let local = repo_key("/tmp/berth-app-1");
        assert_eq!(local.as_deref(), Some("file:///tmp/berth-app-1"));
        assert_eq!(repo_key("file:///tmp/berth-app-1/"), local);
        // Paths keep their case and their `.git`; a host is never a path.
        for other in [
            "/tmp/Berth-App-1",
            "/tmp/berth-app-1.git",
            "https://tmp/berth-app-1",
        ] {
            assert_ne!(repo_key(other), local, "{other}");
        }
        assert_eq!(repo_key("/"), None);
        assert_eq!(repo_key("not a url"), None);
    }

    #[test]
    fn a_push_naming_a_local_apps_path_deploys_it() {
        let path = "/tmp/berth-app-1";
        let at_path = Target {
            repo_url: path,
            branch: "main",
            subdirectory: None,
        };
        let url = format!("file://{path}");
        let local = push(json!({"repository": {"full_name": "local/app",
            "clone_url": url, "pushed_at": Utc::now().timestamp()}}));
        let now = Utc::now();
        assert_eq!(
            decide(&local, &at_path, now),
            Decision::Deploy(SHA.to_lowercase())
        );
        let file_app = Target {
            repo_url: &url,
            ..at_path
        };
        assert!(matches!(
            decide(&local, &file_app, now),
            Decision::Deploy(_)
        ));
        // A GitHub push does not reach a local app, nor a local one a GitHub app.
        assert!(ignored(decide(&push(json!({})), &file_app, now)).contains("Hello-World"));
        assert!(ignored(decide(&local, &app(None), now)).contains("local/app"));
    }

    #[test]
    fn malformed_pushes_are_refused() {
        assert!(PushEvent::parse(b"{").is_err());
        assert!(PushEvent::parse(br#"{"ref": "refs/heads/main"}"#).is_err());
        let short = json!({"ref": "refs/heads/main", "after": "abc", "repository": {}});
        assert!(PushEvent::parse(short.to_string().as_bytes()).is_err());
    }
}
