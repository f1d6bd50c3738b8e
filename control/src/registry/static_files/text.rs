//! One manifest file's text, read as the static registry reads a file:
//! parsed ([`super::manifest`]) and built into the local snapshot it alone
//! gives ([`crate::registry::build`]). No file system is involved, so the
//! fuzz targets and offline checks can feed it any text.

use super::manifest::{self, ManifestError};
use crate::model::LocalSnapshot;
use crate::registry::build::{Sourced, build};

/// Why a manifest text gives no objects (the registry reports the file).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ManifestTextError(ManifestError);

/// Parses `text` as one manifest file named `source` and builds the local
/// snapshot of its Services and EndpointSlices, problems included.
///
/// # Errors
///
/// The text is not YAML, or a Service or EndpointSlice in it does not fit
/// its kind.
pub fn snapshot_of_text(text: &str, source: &str) -> Result<LocalSnapshot, ManifestTextError> {
    let objects = manifest::parse(text).map_err(ManifestTextError)?;
    let services: Vec<_> = objects
        .services
        .into_iter()
        .map(|o| sourced(source, o))
        .collect();
    let slices: Vec<_> = objects
        .slices
        .into_iter()
        .map(|o| sourced(source, o))
        .collect();
    Ok(build(&services, &slices))
}

fn sourced<T>(source: &str, object: T) -> Sourced<T> {
    Sourced {
        source: source.to_string(),
        object,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_text_builds_its_services_and_bad_yaml_is_an_error() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: hello\n  namespace: demo\n  \
                    annotations:\n    fedmesh.io/export: \"true\"\nspec:\n  ports:\n  - name: http\n    \
                    port: 8080\n";
        let snapshot = snapshot_of_text(text, "hello.yaml").expect("a valid manifest");
        let names: Vec<_> = snapshot.services.keys().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["hello"]);
        let error = snapshot_of_text("a: [", "bad.yaml").expect_err("not YAML");
        assert!(error.to_string().contains("not valid YAML"), "{error}");
    }
}
