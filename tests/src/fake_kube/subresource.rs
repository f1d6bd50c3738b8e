//! The `/status` subresource of the fake API server's custom resources:
//! a merge patch (RFC 7386) of `status` that changes nothing else, and
//! main-resource writes that keep the stored status, as a real API server
//! does for a CRD with `subresources: {status: {}}`.

use std::sync::{Arc, Mutex};

use hyper::StatusCode;
use hyper::body::Bytes;
use serde_json::{Value, json};

use super::{Body, State, Target, json_response, lock, status};

/// `PATCH …/NAME/status` with a merge patch: only `status` changes; 404
/// when the object does not exist (status cannot create).
pub(super) fn merge_status(
    state: &Arc<Mutex<State>>,
    t: &Target,
    name: &str,
    body: &Bytes,
) -> hyper::Response<Body> {
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "patch body is not JSON",
        );
    };
    let ns = t.namespace.clone().unwrap_or_else(|| "default".into());
    let mut s = lock(state);
    let key = (t.kind, ns, name.to_string());
    let Some(mut object) = s.objects.get(&key).cloned() else {
        return status(StatusCode::NOT_FOUND, "NotFound", "not found");
    };
    let mut new_status = object["status"].take();
    merge(&mut new_status, &patch["status"]);
    object["status"] = new_status;
    s.change(t.kind, "MODIFIED", object);
    let stored = s.objects.get(&key).cloned().unwrap_or_default();
    json_response(StatusCode::OK, &stored)
}

/// A write of the main resource keeps the stored status (or none).
pub(super) fn keep_status(object: &mut Value, existing: Option<&Value>) {
    let kept = existing.map_or(Value::Null, |e| e["status"].clone());
    match object.as_object_mut() {
        Some(map) if kept.is_null() => {
            map.remove("status");
        }
        Some(map) => {
            map.insert("status".into(), kept);
        }
        None => {}
    }
    // A generation, as the API server keeps one for spec changes.
    if object["metadata"]["generation"].is_null() {
        let generation = existing.map_or(json!(1), |e| e["metadata"]["generation"].clone());
        object["metadata"]["generation"] = if generation.is_null() {
            json!(1)
        } else {
            generation
        };
    }
}

/// RFC 7386: objects merge key by key, `null` removes, anything else
/// (arrays included) replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(map) = target.as_object_mut() {
        for (k, v) in fields {
            if v.is_null() {
                map.remove(k);
            } else {
                merge(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_patch_replaces_arrays_and_removes_nulls() {
        let mut v = json!({"a": 1, "b": {"c": [1, 2], "d": 3}});
        merge(&mut v, &json!({"b": {"c": [9], "d": null}, "e": "x"}));
        assert_eq!(v, json!({"a": 1, "b": {"c": [9]}, "e": "x"}));
    }

    #[test]
    fn main_resource_writes_keep_the_stored_status() {
        let stored = json!({"metadata": {"generation": 3}, "status": {"conditions": [1]}});
        let mut applied = json!({"metadata": {}, "spec": {}, "status": {"clobbered": true}});
        keep_status(&mut applied, Some(&stored));
        assert_eq!(applied["status"], json!({"conditions": [1]}));
        assert_eq!(applied["metadata"]["generation"], 3);
        let mut fresh = json!({"metadata": {}, "status": {"x": 1}});
        keep_status(&mut fresh, None);
        assert!(
            fresh.get("status").is_none(),
            "a created object has no status yet"
        );
    }
}
