//! Reading the repository's markdown for the documentation tests: which
//! files there are, and the code in them (fenced blocks and inline spans).

use std::path::{Path, PathBuf};

/// The workspace root.
///
/// # Panics
/// Never in this workspace: the tests crate sits in its root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace root")
        .to_path_buf()
}

/// README.md and every `*.md` under docs/ and examples/, sorted.
pub fn markdown_files() -> Vec<PathBuf> {
    let root = repo_root();
    let mut out = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs"), root.join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `path` relative to the workspace root, for messages.
pub fn shown(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The fenced blocks of a markdown text whose info string is `lang`
/// (such as `yaml`), each with the line number of its first line.
pub fn fenced_blocks(text: &str, lang: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut open, fence) {
            (Some(_), true) => out.extend(open.take()),
            (Some((_, block)), false) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, true) if line.trim().strip_prefix("```") == Some(lang) => {
                open = Some((i + 2, String::new()));
            }
            (None, _) => {}
        }
    }
    out
}

/// The code in a markdown text: each line of every fenced block, and each
/// inline code span elsewhere, with its line number.
pub fn code_of(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push((i + 1, line.to_owned()));
            continue;
        }
        let mut spans = line.split('`');
        spans.next();
        while let Some(span) = spans.next() {
            out.push((i + 1, span.to_owned()));
            spans.next();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_found_in_blocks_and_spans() {
        let md = "run `fedctl peers` now\n```sh\nfedctl check\n```\n```yaml\na: 1\n```\n";
        assert_eq!(
            code_of(md),
            vec![
                (1, "fedctl peers".to_owned()),
                (3, "fedctl check".to_owned()),
                (6, "a: 1".to_owned())
            ]
        );
        assert_eq!(fenced_blocks(md, "yaml"), vec![(6, "a: 1\n".to_owned())]);
        assert_eq!(
            fenced_blocks(md, "sh"),
            vec![(3, "fedctl check\n".to_owned())]
        );
    }
}
