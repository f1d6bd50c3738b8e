//! Replays every checked-in input of every target: the seed corpus
//! (`corpus/<target>/`) and the inputs of crashes found and fixed
//! (`regressions/<target>/`). A fixed parser that breaks again fails
//! here, in a plain `cargo test`, without a fuzzing engine.

use std::path::Path;

#[test]
fn every_seed_and_every_fixed_crash_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut replayed = 0usize;
    for (name, run) in fedmesh_fuzz::TARGETS {
        let mut seeds = 0usize;
        for folder in ["corpus", "regressions"] {
            let dir = root.join(folder).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry
                    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .path();
                let data =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                run(&data);
                seeds += 1;
            }
        }
        assert!(seeds > 0, "target {name} has no seed in corpus/{name}/");
        replayed += seeds;
    }
    println!("replayed {replayed} inputs");
}
