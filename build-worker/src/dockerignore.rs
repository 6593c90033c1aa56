//! `.dockerignore`, as Docker reads it: one pattern a line, `#` comments,
//! `!` re-includes, `*` and `?` within a path segment, `**` across any
//! number of segments, `[a-z]` classes. A pattern that matches a folder
//! excludes everything in it. The last matching pattern decides.

#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    include: bool,
}

impl DockerIgnore {
    pub fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (include, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let pattern = clean(pattern);
                (!pattern.is_empty()).then_some(Rule { pattern, include })
            })
            .collect();
        Self { rules }
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let path = clean(path);
        let mut excluded = false;
        for rule in &self.rules {
            if rule.include == excluded && matches_path_or_parent(&rule.pattern, &path) {
                excluded = !rule.include;
            }
        }
        excluded
    }

    /// Whether everything under an excluded folder stays excluded, so the
    /// walk can skip it (true unless some `!` pattern could re-include).
    pub fn prunes(&self, dir: &str) -> bool {
        self.excludes(dir) && !self.rules.iter().any(|rule| rule.include)
    }
}

/// Docker's cleaning: no leading `/` or `./`, no empty or `.` segments.
fn clean(path: &str) -> String {
    path.split('/')
        .filter(|segment| !segment.is_empty() && *segment != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn matches_path_or_parent(pattern: &str, path: &str) -> bool {
    if glob(pattern.as_bytes(), path.as_bytes()) {
        return true;
    }
    path.match_indices('/')
        .any(|(at, _)| glob(pattern.as_bytes(), &path.as_bytes()[..at]))
}

/// Matches a whole path against a pattern.
fn glob(pattern: &[u8], path: &[u8]) -> bool {
    match pattern.first() {
        None => path.is_empty(),
        Some(b'*') if pattern.get(1) == Some(&b'*') => {
            let rest = &pattern[2..];
            match rest.first() {
                // `**` at the end matches everything that is left.
                None => true,
                // `**/x`: x here, or after any `/`.
                Some(b'/') => {
                    let rest = &rest[1..];
                    glob(rest, path)
                        || path
                            .iter()
                            .enumerate()
                            .any(|(i, c)| *c == b'/' && glob(rest, &path[i + 1..]))
                }
                // `**x`: like `*` but may cross `/`.
                Some(_) => (0..=path.len()).any(|i| glob(rest, &path[i..])),
            }
        }
        Some(b'*') => {
            let rest = &pattern[1..];
            let mut i = 0;
            loop {
                if glob(rest, &path[i..]) {
                    return true;
                }
                if i == path.len() || path[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some(b'?') => {
            matches!(path.first(), Some(c) if *c != b'/') && glob(&pattern[1..], &path[1..])
        }
        Some(b'[') => match (class(&pattern[1..]), path.first()) {
            (Some((matched, len)), Some(c)) if *c != b'/' => {
                matched(*c) && glob(&pattern[1 + len..], &path[1..])
            }
            (None, Some(b'[')) => glob(&pattern[1..], &path[1..]),
            _ => false,
        },
        Some(b'\\') if pattern.len() > 1 => {
            path.first() == Some(&pattern[1]) && glob(&pattern[2..], &path[1..])
        }
        Some(c) => path.first() == Some(c) && glob(&pattern[1..], &path[1..]),
    }
}

type ClassMatch = Box<dyn Fn(u8) -> bool>;

/// A `[...]` class (after the `[`): its matcher and how many pattern bytes it
/// used, including the `]`. `None` when there is no closing `]`.
fn class(pattern: &[u8]) -> Option<(ClassMatch, usize)> {
    let negated = matches!(pattern.first(), Some(b'^' | b'!'));
    let start = usize::from(negated);
    let end = start + 1 + pattern.get(start + 1..)?.iter().position(|c| *c == b']')?;
    let body = pattern[start..end].to_vec();
    let matcher = move |c: u8| {
        let mut i = 0;
        let mut hit = false;
        while i < body.len() {
            if i + 2 < body.len() && body[i + 1] == b'-' {
                hit |= body[i] <= c && c <= body[i + 2];
                i += 3;
            } else {
                hit |= body[i] == c;
                i += 1;
            }
        }
        hit != negated
    };
    Some((Box::new(matcher), end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_folders_and_their_contents() {
        let ignore = DockerIgnore::parse("# comment\n\nnode_modules\n/target/\n*.log\n");
        assert!(ignore.excludes("node_modules"));
        assert!(ignore.excludes("node_modules/left-pad/index.js"));
        assert!(ignore.excludes("target/release/app"));
        assert!(ignore.excludes("debug.log"));
        assert!(!ignore.excludes("logs/debug.log"), "* stays in one segment");
        assert!(!ignore.excludes("src/node_modules.rs"));
        assert!(!ignore.excludes("app.py"));
        assert!(ignore.prunes("node_modules"));
    }

    #[test]
    fn double_star_crosses_folders() {
        let ignore = DockerIgnore::parse("**/*.pyc\ndocs/**\n");
        assert!(ignore.excludes("a.pyc"));
        assert!(ignore.excludes("pkg/sub/mod.pyc"));
        assert!(ignore.excludes("docs/index.md"));
        assert!(
            !ignore.excludes("docs"),
            "docs/** matches what is inside docs"
        );
        assert!(!ignore.excludes("pkg/mod.py"));
    }

    #[test]
    fn the_last_matching_pattern_wins_and_bang_re_includes() {
        let ignore = DockerIgnore::parse("*.md\n!README.md\nREADME*.md\n!README-keep.md\n");
        assert!(ignore.excludes("CHANGES.md"));
        assert!(ignore.excludes("README.md"));
        assert!(!ignore.excludes("README-keep.md"));
        assert!(!ignore.prunes("docs"));

        let ignore = DockerIgnore::parse("secrets\n!secrets/public.pem\n");
        assert!(ignore.excludes("secrets/private.pem"));
        assert!(!ignore.excludes("secrets/public.pem"));
        assert!(!ignore.prunes("secrets"), "a ! rule may reach inside");
    }

    #[test]
    fn question_marks_classes_and_escapes() {
        let ignore = DockerIgnore::parse("file?.txt\n[abc]-[0-9].bin\n[!x]y\n\\*literal\n");
        assert!(ignore.excludes("file1.txt"));
        assert!(!ignore.excludes("file10.txt"));
        assert!(ignore.excludes("b-7.bin"));
        assert!(!ignore.excludes("d-7.bin"));
        assert!(ignore.excludes("zy"));
        assert!(!ignore.excludes("xy"));
        assert!(ignore.excludes("*literal"));
        assert!(!ignore.excludes("aliteral"));
    }

    #[test]
    fn leading_dot_slash_and_empty_files() {
        let ignore = DockerIgnore::parse("./build\n");
        assert!(ignore.excludes("build/out.js"));
        assert!(!DockerIgnore::parse("").excludes("anything"));
        assert!(!DockerIgnore::parse("!").excludes("anything"));
    }
}
