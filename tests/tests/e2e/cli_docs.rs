//! docs/cli.md stays true to the `fedctl` command line:
//!
//! - its reference section is rendered from clap (`Cli::command()`), so a
//!   changed flag or help text shows up as a diff; run with
//!   `FEDMESH_UPDATE_DOCS=1` to rewrite it;
//! - its hand-written part mentions every subcommand that is not hidden;
//! - every `fedctl …` command written in code in README.md, docs/*.md and
//!   the examples' READMEs names subcommands and flags that exist.

use std::path::PathBuf;

use clap::{Command, CommandFactory};
use fedmesh_control::cli::Cli;
use fedmesh_tests::docs::{code_of, markdown_files, repo_root, shown};

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE";
const END: &str = "<!-- END GENERATED REFERENCE -->";

/// The built `fedctl` command: global flags propagated, bin names set.
fn fedctl() -> Command {
    let mut cmd = Cli::command();
    cmd.build();
    cmd
}

/// Every documented (not hidden) command with its full name, depth first.
fn commands(cmd: &Command, name: &str, out: &mut Vec<(String, Command)>) {
    out.push((name.to_owned(), cmd.clone()));
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        commands(sub, &format!("{name} {}", sub.get_name()), out);
    }
}

fn all_commands() -> Vec<(String, Command)> {
    let mut out = Vec::new();
    commands(&fedctl(), "fedctl", &mut out);
    out
}

/// The reference section: every command's `--help`, as clap prints it.
fn render_reference() -> String {
    let mut text = String::new();
    text.push_str(&format!(
        "{BEGIN}: rendered from clap by tests/tests/e2e/cli_docs.rs; do not edit by hand, run `FEDMESH_UPDATE_DOCS=1 cargo test -p fedmesh-tests --test e2e cli_docs` -->\n"
    ));
    for (name, mut cmd) in all_commands() {
        let help = cmd.render_help().to_string();
        text.push_str(&format!("\n### `{name}`\n\n```text\n"));
        for line in help.trim_end().lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text.push_str("```\n");
    }
    text.push('\n');
    text.push_str(END);
    text
}

fn cli_md() -> (PathBuf, String) {
    let path = repo_root().join("docs/cli.md");
    let text = std::fs::read_to_string(&path).expect("docs/cli.md exists");
    (path, text)
}

/// (hand-written part, generated part) of docs/cli.md.
fn split(text: &str) -> (String, &str) {
    let start = text
        .find(BEGIN)
        .expect("docs/cli.md has a BEGIN GENERATED REFERENCE marker");
    let end = text[start..]
        .find(END)
        .map(|i| start + i + END.len())
        .expect("docs/cli.md has an END GENERATED REFERENCE marker");
    (
        format!("{}{}", &text[..start], &text[end..]),
        &text[start..end],
    )
}

#[test]
fn the_cli_reference_is_rendered_from_clap() {
    let (path, text) = cli_md();
    let (_, current) = split(&text);
    let wanted = render_reference();
    if current == wanted {
        return;
    }
    if std::env::var_os("FEDMESH_UPDATE_DOCS").is_some() {
        let updated = text.replace(current, &wanted);
        std::fs::write(&path, updated).expect("write docs/cli.md");
        return;
    }
    panic!(
        "docs/cli.md's reference differs from `fedctl --help`; rewrite it with\n  FEDMESH_UPDATE_DOCS=1 cargo test -p fedmesh-tests --test e2e cli_docs\n(and update the text around it if the change needs words)"
    );
}

#[test]
fn every_subcommand_is_described_in_cli_md() {
    let (_, text) = cli_md();
    let (prose, _) = split(&text);
    for (name, _) in all_commands().iter().skip(1) {
        assert!(
            prose.contains(&format!("`{name}")),
            "docs/cli.md does not describe `{name}` outside the generated reference"
        );
    }
}

/// Where `fedctl` is invoked in a piece of code: the text after each
/// `fedctl` word (also as the end of a path, such as target/release/fedctl).
fn invocations(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("fedctl") {
        let before = code[..at].chars().next_back();
        let after = &code[at + "fedctl".len()..];
        let word_start = before.is_none_or(|c| !(c.is_alphanumeric() || "_-.$".contains(c)));
        let word_end = after.chars().next().is_none_or(char::is_whitespace);
        if word_start && word_end {
            let end = after.find(['`', '|', ';', '&', ')', '#', '"', '\'']);
            out.push(&after[..end.unwrap_or(after.len())]);
        }
    }
    out
}

/// Checks one invocation's words against clap; the first problem.
fn check_invocation(root: &Command, words: &str) -> Result<(), String> {
    let mut cmd = root.clone();
    let mut path = "fedctl".to_owned();
    let mut tokens = words.split_whitespace();
    while let Some(token) = tokens.next() {
        if token == "--" {
            // `cargo run --bin fedctl -- demo`: the end of cargo's flags.
            continue;
        }
        if let Some(flag) = token.strip_prefix('-') {
            let (name, inline_value) = match flag.split_once('=') {
                Some((name, _)) => (name, true),
                None => (flag, false),
            };
            let arg = cmd.get_arguments().find(|a| match name.strip_prefix('-') {
                Some(long) => a.get_long() == Some(long),
                None => name.len() == 1 && a.get_short() == name.chars().next(),
            });
            let Some(arg) = arg else {
                return Err(format!("`{path}` has no flag {token}"));
            };
            if arg.get_action().takes_values() && !inline_value {
                tokens.next();
            }
            continue;
        }
        let is_word = token
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && token.starts_with(|c: char| c.is_ascii_lowercase());
        if !is_word || !cmd.has_subcommands() {
            // A value, a placeholder such as <token>, or prose: done.
            return Ok(());
        }
        match cmd.find_subcommand(token) {
            Some(sub) if !sub.is_hide_set() => {
                path = format!("{path} {token}");
                cmd = sub.clone();
            }
            _ => return Err(format!("`{path}` has no subcommand {token:?}")),
        }
    }
    Ok(())
}

#[test]
fn every_fedctl_command_in_the_docs_exists() {
    let root = fedctl();
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in markdown_files() {
        let mut text = std::fs::read_to_string(&doc).expect("read a markdown file");
        if doc.ends_with("docs/cli.md") {
            // The generated reference is clap's own words.
            text = split(&text).0;
        }
        let shown = shown(&doc);
        for (line, code) in code_of(&text) {
            for words in invocations(&code) {
                checked += 1;
                if let Err(problem) = check_invocation(&root, words) {
                    problems.push(format!("{shown}:{line}: {problem}: fedctl{words}"));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} fedctl commands found in the docs"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_command_checker_catches_what_does_not_exist() {
    let root = fedctl();
    assert!(check_invocation(&root, " --config east.yaml token create --ttl 10m").is_ok());
    assert!(check_invocation(&root, " peers -o json").is_ok());
    assert!(check_invocation(&root, " join <token>").is_ok());
    assert!(check_invocation(&root, " token revoke").is_err());
    assert!(check_invocation(&root, " peers --watch").is_err());
    assert!(check_invocation(&root, " demo-backend --listen x").is_err());
    assert_eq!(
        invocations("FEDCTL=target/release/fedctl; fedctl.log; $fedctl; fedctl peers"),
        vec![" peers"]
    );
}
