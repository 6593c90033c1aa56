//! Property-based tests of stack detection and Procfile parsing: random
//! folder listings and random Procfile and Cargo.toml contents. Nothing may
//! panic, and what a repository writes can never add a line (an instruction)
//! to a generated Dockerfile: its start command is only ever the JSON
//! argument of the one `CMD`.

use crate::detect::{cargo_binary_name, plan, web_command, AppFiles, Plan, Recipe, StackImages};
use proptest::prelude::*;

fn images() -> StackImages {
    StackImages {
        python: "py:1".into(),
        node: "node:1".into(),
        go: "go:1".into(),
        rust: "rust:1".into(),
        static_site: "static:1".into(),
    }
}

/// Names detection looks at, and any others.
fn file_names() -> impl Strategy<Value = Vec<String>> {
    let known = prop::sample::select(vec![
        "Dockerfile",
        "Containerfile",
        "go.mod",
        "go.sum",
        "Cargo.toml",
        "requirements.txt",
        "pyproject.toml",
        "app.py",
        "main.py",
        "package.json",
        "package-lock.json",
        "npm-shrinkwrap.json",
        "index.html",
        "Procfile",
    ])
    .prop_map(str::to_owned);
    prop::collection::vec(prop_oneof![known, "[^/\0]{1,20}"], 0..10)
}

/// Text with the characters that matter to line-based parsers.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".*",
        prop::collection::vec(
            prop_oneof![
                // Literal pieces (a plain &str would be a regex).
                prop::sample::select(vec![
                    "web",
                    ":",
                    "\n",
                    "\r\n",
                    "\r",
                    "#",
                    " ",
                    "\t",
                    "\"",
                    "'",
                    "=",
                    "[",
                    "]",
                    "[[bin]]",
                    "[package]",
                    "name",
                    "\u{2028}",
                    "RUN rm -rf /",
                ])
                .prop_map(str::to_owned),
                "[a-z]{1,6}",
            ],
            0..40
        )
        .prop_map(|parts| parts.concat()),
    ]
}

const ALLOWED_STARTS: [&str; 9] = [
    "# ", "FROM ", "WORKDIR ", "COPY ", "RUN ", "ENV ", "EXPOSE ", "CMD ", "    ",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_web_command_is_one_trimmed_line_of_the_procfile(procfile in text()) {
        if let Some(command) = web_command(&procfile) {
            prop_assert!(!command.is_empty());
            prop_assert_eq!(command.trim(), command.as_str());
            prop_assert!(!command.contains('\n'));
            prop_assert!(procfile.lines().any(|line| line.contains(command.as_str())));
        }
    }

    #[test]
    fn a_web_line_among_others_is_found(
        before in prop::collection::vec("[a-z]{1,8}: [^\n\r]*", 0..4),
        command in "[^\n\r#]*[a-zA-Z0-9$&|;'\"`]",
        after in prop::collection::vec("[^\n\r]*", 0..4),
    ) {
        prop_assume!(before.iter().all(|line| !line.trim_start().starts_with("web")));
        let mut lines = before;
        lines.push(format!("  web :  {command}  "));
        lines.extend(after);
        let procfile = lines.join("\n");
        prop_assert_eq!(web_command(&procfile), Some(command.trim().to_owned()));
    }

    #[test]
    fn any_cargo_manifest_is_read_without_panicking(manifest in text()) {
        let _ = cargo_binary_name(&manifest);
    }

    /// Any folder, any Procfile and Cargo.toml: detection decides or says
    /// why, and a generated Dockerfile is berth's instructions only, its
    /// `CMD` the JSON form of the start command.
    #[test]
    fn detection_never_panics_and_repository_text_never_becomes_an_instruction(
        names in file_names(),
        procfile in proptest::option::of(text()),
        manifest in proptest::option::of(text()),
        port in 1u16..,
        extra_ca in any::<bool>(),
    ) {
        let mut files = AppFiles::new(names);
        if let Some(procfile) = &procfile {
            files = files.with("Procfile", procfile);
        }
        if let Some(manifest) = &manifest {
            files = files.with("Cargo.toml", manifest);
        }
        let images = images();
        let recipe = Recipe { images: &images, port, extra_ca };
        let Ok(Plan::Generated { dockerfile, .. }) = plan(&files, &recipe) else {
            return Ok(());
        };
        let lines: Vec<&str> = dockerfile.lines().collect();
        for line in &lines {
            prop_assert!(
                ALLOWED_STARTS.iter().any(|start| line.starts_with(start)),
                "not berth's: {:?}\n{}", line, dockerfile
            );
        }
        let cmds: Vec<&&str> = lines.iter().filter(|line| line.starts_with("CMD ")).collect();
        prop_assert_eq!(cmds.len(), 1);
        prop_assert_eq!(Some(cmds[0]), lines.last());
        let argv: Vec<String> = serde_json::from_str(&cmds[0]["CMD ".len()..]).unwrap();
        prop_assert_eq!(&argv[..2], &["sh".to_owned(), "-c".to_owned()]);
        if let Some(web) = procfile.as_deref().and_then(web_command) {
            // The Procfile's command, whole, run by the shell or in its place.
            prop_assert!(argv[2] == web || argv[2] == format!("exec {web}"), "{:?}", argv);
        }
    }
}
