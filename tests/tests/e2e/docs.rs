//! The YAML in the docs is real: every field of the config schema is
//! described in docs/config.md, every `yaml` block there is a config the
//! real parser accepts, and elsewhere in README.md, docs/ and examples/
//! every `yaml` block that is a config or a manifest parses with the config
//! parser or the static registry.

use std::path::Path;

use fedmesh_control::registry::static_files::StaticFiles;
use fedmesh_proto::config::Config;
use fedmesh_tests::docs::{fenced_blocks, markdown_files, repo_root, shown};

fn config_md() -> String {
    std::fs::read_to_string(repo_root().join("docs/config.md")).expect("docs/config.md")
}

#[test]
fn every_config_field_is_described_in_config_md() {
    let text = config_md();
    let missing: Vec<String> = Config::field_paths()
        .into_iter()
        .filter(|path| !text.contains(&format!("`{path}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/config.md does not describe (as `field.path`): {missing:?}"
    );
}

#[test]
fn every_yaml_block_in_config_md_is_a_valid_config() {
    let text = config_md();
    let blocks = fenced_blocks(&text, "yaml");
    assert!(!blocks.is_empty(), "docs/config.md has no yaml blocks");
    for (line, block) in blocks {
        if let Err(e) = Config::from_yaml(&block, Path::new("docs/config.md")) {
            panic!("docs/config.md, block at line {line}: {e}\n{block}");
        }
    }
}

#[test]
fn configs_and_manifests_in_the_docs_parse() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let mut checked = 0;
    for doc in markdown_files() {
        let text = std::fs::read_to_string(&doc).expect("read a markdown file");
        let shown = shown(&doc);
        for (line, block) in fenced_blocks(&text, "yaml") {
            let at = format!("{shown}, block at line {line}");
            if block.lines().any(|l| l.starts_with("cluster:")) {
                checked += 1;
                if let Err(e) = Config::from_yaml(&block, Path::new(&shown)) {
                    panic!("{at}: {e}\n{block}");
                }
            } else if block.lines().any(|l| l.starts_with("apiVersion:")) {
                checked += 1;
                let dir = scratch.path().join(checked.to_string());
                std::fs::create_dir_all(&dir).expect("mkdir");
                std::fs::write(dir.join("block.yaml"), &block).expect("write");
                let snap = StaticFiles::load(&dir);
                assert!(
                    snap.problems.is_empty(),
                    "{at}: {:?}\n{block}",
                    snap.problems
                );
            }
        }
    }
    assert!(checked >= 4, "only {checked} yaml blocks checked");
}
