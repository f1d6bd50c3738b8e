//! The objects one watcher has seen, kept from its events (kube-runtime's
//! `watcher::Event`): `Apply`/`Delete` change one object; `Init`,
//! `InitApply`… `InitDone` is a relist, whose objects replace the whole
//! set at once on `InitDone` (objects not listed again were deleted while
//! the watch was down).
//!
//! Pure state, no I/O: the registry task feeds it events and rebuilds its
//! snapshot when [`ObjectSet::apply`] reports a change.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::runtime::watcher::Event;

use crate::registry::build::Sourced;

/// Objects by `namespace/name`, and the relist in progress.
#[derive(Debug, Clone)]
pub(crate) struct ObjectSet<K> {
    live: BTreeMap<String, Sourced<K>>,
    relist: Option<BTreeMap<String, Sourced<K>>>,
    listed: bool,
}

impl<K> Default for ObjectSet<K> {
    fn default() -> Self {
        Self {
            live: BTreeMap::new(),
            relist: None,
            listed: false,
        }
    }
}

impl<K: ResourceExt + PartialEq> ObjectSet<K> {
    /// Applies one watch event; true when the live set changed.
    pub(crate) fn apply(&mut self, event: Event<K>) -> bool {
        match event {
            Event::Apply(obj) => {
                let key = key(&obj);
                if self.live.get(&key).is_some_and(|s| s.object == obj) {
                    return false;
                }
                self.live.insert(key, sourced(obj));
                true
            }
            Event::Delete(obj) => self.live.remove(&key(&obj)).is_some(),
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(obj) => {
                // An InitApply without Init (not sent by kube-runtime) still
                // starts a relist rather than being lost.
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&obj), sourced(obj));
                false
            }
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let first = !self.listed;
                self.listed = true;
                let changed = listed != self.live;
                self.live = listed;
                changed || first
            }
        }
    }

    /// Whether a first full list has completed.
    pub(crate) fn listed(&self) -> bool {
        self.listed
    }

    /// The live objects.
    pub(crate) fn objects(&self) -> impl Iterator<Item = &Sourced<K>> {
        self.live.values()
    }

    /// How many live objects there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }
}

/// Objects from the API carry no file name: problems name them by kind
/// and `namespace/name` alone.
fn sourced<K>(object: K) -> Sourced<K> {
    Sourced {
        source: String::new(),
        object,
    }
}

fn key<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::ObjectMeta;

    use super::*;

    fn svc(ns: &str, name: &str, label: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some([("v".to_string(), label.to_string())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn names(set: &ObjectSet<Service>) -> Vec<String> {
        set.objects().map(|s| s.object.name_any()).collect()
    }

    #[test]
    fn nothing_is_listed_until_the_first_init_done() {
        let mut set = ObjectSet::default();
        assert!(!set.apply(Event::Init));
        assert!(!set.apply(Event::InitApply(svc("a", "x", "1"))));
        assert!(!set.listed());
        assert_eq!(set.len(), 0, "a relist in progress is not live yet");
        assert!(set.apply(Event::InitDone));
        assert!(set.listed());
        assert_eq!(names(&set), ["x"]);
    }

    #[test]
    fn an_empty_first_list_still_counts_as_a_change() {
        let mut set: ObjectSet<Service> = ObjectSet::default();
        set.apply(Event::Init);
        assert!(
            set.apply(Event::InitDone),
            "the first list must be published"
        );
        assert!(set.listed());
    }

    #[test]
    fn apply_adds_and_modifies_and_delete_removes() {
        let mut set = ObjectSet::default();
        set.apply(Event::Init);
        set.apply(Event::InitDone);
        assert!(set.apply(Event::Apply(svc("a", "x", "1"))));
        assert!(
            !set.apply(Event::Apply(svc("a", "x", "1"))),
            "same object again"
        );
        assert!(set.apply(Event::Apply(svc("a", "x", "2"))));
        assert!(
            set.apply(Event::Apply(svc("b", "x", "1"))),
            "keyed by namespace"
        );
        assert_eq!(set.len(), 2);
        assert!(set.apply(Event::Delete(svc("a", "x", "2"))));
        assert!(!set.apply(Event::Delete(svc("a", "x", "2"))));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn a_relist_replaces_objects_deleted_while_the_watch_was_down() {
        let mut set = ObjectSet::default();
        set.apply(Event::Init);
        set.apply(Event::InitApply(svc("a", "x", "1")));
        set.apply(Event::InitApply(svc("a", "y", "1")));
        set.apply(Event::InitDone);
        assert_eq!(names(&set), ["x", "y"]);
        // The watch broke; meanwhile y was deleted and z created.
        set.apply(Event::Init);
        set.apply(Event::InitApply(svc("a", "x", "1")));
        assert_eq!(
            names(&set),
            ["x", "y"],
            "old objects serve until the relist ends"
        );
        set.apply(Event::InitApply(svc("a", "z", "1")));
        assert!(set.apply(Event::InitDone));
        assert_eq!(names(&set), ["x", "z"]);
    }

    #[test]
    fn an_identical_relist_is_not_a_change() {
        let mut set = ObjectSet::default();
        for _ in 0..2 {
            set.apply(Event::Init);
            set.apply(Event::InitApply(svc("a", "x", "1")));
        }
        assert!(set.apply(Event::InitDone));
        set.apply(Event::Init);
        set.apply(Event::InitApply(svc("a", "x", "1")));
        assert!(!set.apply(Event::InitDone));
    }
}
