//! A Dockerfile read the way the builders read it, as far as the policy
//! needs: parser directives (`# escape=`), line continuations with the
//! escape character, comment lines inside continuations, and the `--flags`
//! that lead an instruction. The policy must see exactly what the builder
//! will see; a parser more lenient than the builder's would let a refused
//! flag slip through a continuation or an escape directive.

/// One instruction, with its continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// Upper-cased: `RUN`, `COPY`, ...
    pub keyword: String,
    pub flags: Vec<Flag>,
    /// What follows the keyword and its flags.
    pub args: String,
}

/// `--name=value` (or `--name` alone), quotes removed as the builder does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

/// The file's instructions and its escape character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    pub instructions: Vec<Instruction>,
}

/// A directive the builders would read differently from berth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDirective(pub String);

impl Dockerfile {
    pub fn parse(text: &str) -> Result<Self, BadDirective> {
        let lines: Vec<&str> = text.lines().collect();
        let (escape, first) = directives(&lines)?;
        let mut instructions = Vec::new();
        let mut pending: Option<(usize, String)> = None;
        for (index, raw) in lines.iter().enumerate().skip(first) {
            let trimmed = raw.trim();
            let is_comment = trimmed.starts_with('#');
            if pending.is_none() && (trimmed.is_empty() || is_comment) {
                continue;
            }
            // Inside a continuation, comment and blank lines are dropped.
            if pending.is_some() && (trimmed.is_empty() || is_comment) {
                continue;
            }
            let body = raw.trim_end();
            let (body, continues) = match body.strip_suffix(escape) {
                Some(stripped) => (stripped, true),
                None => (body, false),
            };
            let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
            joined.push_str(body);
            if continues {
                pending = Some((start, joined));
            } else {
                instructions.push(instruction(start, &joined, escape));
            }
        }
        if let Some((start, joined)) = pending {
            instructions.push(instruction(start, &joined, escape));
        }
        Ok(Self {
            escape,
            instructions,
        })
    }
}

/// Parses one instruction line (already joined), e.g. an `ONBUILD` trigger.
pub fn instruction(line: usize, text: &str, escape: char) -> Instruction {
    let text = text.trim_start();
    let (keyword, rest) = match text.find(char::is_whitespace) {
        Some(at) => (&text[..at], &text[at..]),
        None => (text, ""),
    };
    let (flags, args) = extract_flags(rest, escape);
    Instruction {
        line,
        keyword: keyword.to_ascii_uppercase(),
        flags,
        args: args.trim().to_owned(),
    }
}

/// Parser directives: `# name=value` lines at the very top. The first line
/// that is not one ends them, as in BuildKit and buildah.
fn directives(lines: &[&str]) -> Result<(char, usize), BadDirective> {
    let mut escape = '\\';
    let mut seen = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let Some(comment) = line.trim().strip_prefix('#') else {
            return Ok((escape, index));
        };
        let Some((name, value)) = comment.split_once('=') else {
            return Ok((escape, index));
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
            return Ok((escape, index));
        }
        if seen.contains(&name) {
            return Err(BadDirective(format!(
                "the `{name}` directive is given twice"
            )));
        }
        if name == "escape" {
            escape = match value.trim() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(BadDirective(format!(
                        "`# escape={other}` is not a valid escape character (use \\ or `)"
                    )))
                }
            };
        }
        seen.push(name);
    }
    Ok((escape, lines.len()))
}

/// Splits the leading `--flag[=value]` words off `rest`, handling quotes
/// and the escape character inside a word as the builders' parser does.
fn extract_flags(rest: &str, escape: char) -> (Vec<Flag>, &str) {
    let mut flags = Vec::new();
    let mut remaining = rest;
    loop {
        let trimmed = remaining.trim_start();
        if !trimmed.starts_with("--") {
            return (flags, trimmed);
        }
        let (word, after) = take_word(trimmed, escape);
        remaining = after;
        let word = &word[2..];
        if word.is_empty() {
            // A bare `--` ends the flags.
            return (flags, remaining.trim_start());
        }
        let flag = match word.split_once('=') {
            Some((name, value)) => Flag {
                name: name.to_ascii_lowercase(),
                value: Some(value.to_owned()),
            },
            None => Flag {
                name: word.to_ascii_lowercase(),
                value: None,
            },
        };
        flags.push(flag);
    }
}

/// One whitespace-delimited word with its quotes removed, and the rest.
fn take_word(text: &str, escape: char) -> (String, &str) {
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => return (word, &text[at..]),
            (_, c) if c == escape => {
                if let Some((_, next)) = chars.next() {
                    word.push(next);
                }
            }
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (_, c) => word.push(c),
        }
    }
    (word, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Dockerfile {
        Dockerfile::parse(text).unwrap()
    }

    #[test]
    fn continuations_join_and_drop_comment_lines() {
        let file = parse(
            "FROM x AS base\n\nRUN --mount=type=cache,target=/c \\\n# a comment\n\n    --network=none echo hi\n",
        );
        assert_eq!(file.instructions.len(), 2);
        let run = &file.instructions[1];
        assert_eq!(run.line, 3);
        assert_eq!(run.keyword, "RUN");
        assert_eq!(
            run.flags,
            [
                Flag {
                    name: "mount".into(),
                    value: Some("type=cache,target=/c".into())
                },
                Flag {
                    name: "network".into(),
                    value: Some("none".into())
                }
            ]
        );
        assert_eq!(run.args, "echo hi");
    }

    #[test]
    fn the_escape_directive_changes_the_continuation_character() {
        let file = parse("# escape=`\nFROM x\nrun --mount=type=bind,`\nfrom=base ls\n");
        assert_eq!(file.escape, '`');
        let run = &file.instructions[1];
        assert_eq!(run.keyword, "RUN");
        assert_eq!(run.flags[0].value.as_deref(), Some("type=bind,from=base"));
        // Continuation lines keep their leading whitespace, as in the
        // builders' parser: the indented part is no longer in the flag.
        let run = &parse("FROM x\nRUN --mount=type=cache,\\\n  from=y ls\n").instructions[1];
        assert_eq!(run.flags[0].value.as_deref(), Some("type=cache,"));
        assert_eq!(run.args, "from=y ls");
        // With the default escape, a backtick is just a character.
        let file = parse("FROM x\nRUN echo a`\nRUN echo b\n");
        assert_eq!(file.instructions.len(), 3);
    }

    #[test]
    fn directives_end_at_the_first_other_line() {
        let file = parse("# a comment\n# escape=`\nFROM x\nRUN a \\\n b\n");
        assert_eq!(file.escape, '\\');
        assert_eq!(file.instructions[1].args, "a  b");
        assert!(Dockerfile::parse("# escape=x\nFROM y").is_err());
        assert!(Dockerfile::parse("# escape=`\n# escape=`\nFROM y").is_err());
    }

    #[test]
    fn quoted_flag_values_lose_their_quotes() {
        let run = instruction(1, r#"RUN --mount="type=bind","from=x" 'ls'"#, '\\');
        assert_eq!(run.flags[0].value.as_deref(), Some("type=bind,from=x"));
        assert_eq!(run.args, "'ls'");
        let run = instruction(1, "RUN -- --not-a-flag", '\\');
        assert!(run.flags.is_empty());
        assert_eq!(run.args, "--not-a-flag");
    }
}
