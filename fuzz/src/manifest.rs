//! Static manifest parsing
//! (`fedmesh_control::registry::static_files::text::snapshot_of_text`): a
//! file of the registry folder, parsed and built into the local exports.
//!
//! Rule checked: any text gives a snapshot (with its problems) or an
//! error, never a panic, and every problem names the file it came from.

use fedmesh_control::registry::static_files::text::snapshot_of_text;

/// Parses `data` as one manifest file.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(snapshot) = snapshot_of_text(text, "fuzz.yaml") {
        for problem in &snapshot.problems {
            assert!(problem.source.contains("fuzz.yaml"), "{problem:?}");
        }
    }
}
