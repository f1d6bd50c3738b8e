//! Config parsing (`fedmesh_proto::config::Config::from_yaml`): the
//! operator's file, parsed and validated before anything starts.
//!
//! Rule checked: any text gives a config or a `ConfigError`, never a
//! panic, and an error always names its file and says what is wrong.

use std::path::Path;

use fedmesh_proto::config::Config;

/// Parses `data` as a config file.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = Config::from_yaml(text, Path::new("fuzz.yaml")) {
        assert_eq!(error.file, "fuzz.yaml");
        assert!(!error.message.is_empty(), "an error without a message");
    }
}
