//! How events become pending work, fed by hand (no watcher).

use notify::event::{CreateKind, DataChange, RemoveKind, RenameMode};

use super::*;

fn changes() -> Arc<Changes> {
    Changes::new(Path::new("/srv/services"))
}

fn event(kind: EventKind, paths: &[&str]) -> notify::Result<Event> {
    let mut e = Event::new(kind);
    for p in paths {
        e = e.add_path(PathBuf::from(p));
    }
    Ok(e)
}

fn write() -> EventKind {
    EventKind::Modify(ModifyKind::Data(DataChange::Any))
}

#[test]
fn writes_renames_and_deletes_name_their_paths() {
    let c = changes();
    c.handle(event(write(), &["/srv/services/a.yaml"]));
    c.handle(event(
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
        &["/srv/services/b.yaml", "/srv/services/team/c.yaml"],
    ));
    c.handle(event(
        EventKind::Remove(RemoveKind::File),
        &["/srv/services/d.yml"],
    ));
    let p = c.take();
    let names: Vec<&str> = p.paths.iter().filter_map(|p| p.to_str()).collect();
    assert_eq!(
        names,
        [
            "/srv/services/a.yaml",
            "/srv/services/b.yaml",
            "/srv/services/d.yml",
            "/srv/services/team/c.yaml"
        ]
    );
    assert!(!p.rescan && !p.rearm);
    assert_eq!(c.take(), Pending::default(), "taken once");
}

#[test]
fn reads_dotfiles_and_other_folders_are_ignored() {
    let c = changes();
    // The registry's own reads cause open and close-without-write events.
    c.handle(event(
        EventKind::Access(AccessKind::Open(AccessMode::Any)),
        &["/srv/services/a.yaml"],
    ));
    c.handle(event(
        EventKind::Access(AccessKind::Close(AccessMode::Read)),
        &["/srv/services/a.yaml"],
    ));
    c.handle(event(
        EventKind::Create(CreateKind::File),
        &["/srv/services/.a.yaml.tmp", "/srv/services/.git/x.yaml"],
    ));
    c.handle(event(write(), &["/srv/other/a.yaml"]));
    assert_eq!(c.take(), Pending::default());
    c.handle(event(
        EventKind::Access(AccessKind::Close(AccessMode::Write)),
        &["/srv/services/a.yaml"],
    ));
    assert_eq!(c.take().paths.len(), 1, "a finished write counts");
}

#[test]
fn the_folder_itself_gone_asks_for_a_new_watch() {
    let c = changes();
    c.handle(event(
        EventKind::Remove(RemoveKind::Folder),
        &["/srv/services"],
    ));
    let p = c.take();
    assert!(p.rescan && p.rearm);
    c.handle(event(
        EventKind::Modify(ModifyKind::Name(RenameMode::From)),
        &["/srv/services"],
    ));
    assert!(c.take().rearm, "moved away");
    c.handle(event(
        EventKind::Modify(ModifyKind::Metadata(notify::event::MetadataKind::Any)),
        &["/srv/services"],
    ));
    let p = c.take();
    assert!(p.rescan && !p.rearm, "a chmod only asks for a rescan");
}

#[test]
fn lost_events_and_watch_errors_ask_for_a_rescan() {
    let c = changes();
    c.handle(Ok(
        Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan)
    ));
    assert!(c.take().rescan, "queue overflow");
    c.handle(Err(notify::Error::new(notify::ErrorKind::MaxFilesWatch)));
    let p = c.take();
    assert!(p.rescan && p.rearm, "an incomplete watch is redone");
}

#[test]
fn a_configmap_volume_swap_asks_for_a_rescan() {
    let c = changes();
    c.handle(event(
        EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        &["/srv/services/..data"],
    ));
    assert!(c.take().rescan);
}

#[test]
fn too_many_paths_become_one_rescan() {
    let c = changes();
    for i in 0..=MAX_PATHS {
        c.handle(event(write(), &[&format!("/srv/services/f{i}.yaml")]));
    }
    let p = c.take();
    assert!(p.rescan);
    assert!(p.paths.len() < MAX_PATHS);
}

#[test]
fn paths_under_a_noted_folder_are_covered_by_it() {
    let mut p = Pending::default();
    for path in [
        "/s/team",
        "/s/team/a.yaml",
        "/s/team/deep/b.yaml",
        "/s/teams.yaml",
    ] {
        p.paths.insert(PathBuf::from(path));
    }
    assert_eq!(
        p.tops(),
        [PathBuf::from("/s/team"), PathBuf::from("/s/teams.yaml")]
    );
}

#[test]
fn relative_folders_match_the_watchers_absolute_paths() {
    let c = Changes::new(Path::new("services"));
    let cwd = std::env::current_dir().unwrap();
    c.handle(event(
        write(),
        &[cwd.join("services/a.yaml").to_str().unwrap()],
    ));
    assert_eq!(
        c.take().paths.into_iter().collect::<Vec<_>>(),
        [PathBuf::from("services/a.yaml")]
    );
}

#[tokio::test]
async fn settle_returns_by_the_cap_while_events_keep_coming() {
    let c = changes();
    let writer = {
        let c = Arc::clone(&c);
        tokio::spawn(async move {
            // A steady stream, faster than the quiet time, for 2 s.
            for i in 0..400 {
                c.handle(event(write(), &[&format!("/srv/services/f{i}.yaml")]));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let settled = tokio::time::timeout(
        Duration::from_secs(1),
        c.settle(Duration::from_millis(50), Duration::from_millis(100)),
    )
    .await;
    writer.abort();
    assert!(
        settled.is_ok(),
        "settle must end at its cap, not at the quiet"
    );
}
