use super::*;

#[test]
fn a_vip_name_reads_back_from_its_stored_form() {
    let key = ServiceKey::new("demo", "hello");
    for vip in [
        key.global_vip(),
        key.pinned_vip("west"),
        key.endpoint_vip("west", "db-0"),
    ] {
        assert_eq!(VipName::from_stored(&vip.to_string()), Some(vip));
    }
    for bad in [
        "demo",
        "demo/hello@",
        "demo/Hello",
        "a/b/c",
        "demo/hello@we st",
        "demo/hello@west/",
        "demo/hello@west/Db-0",
        "demo/hello@west/db-0/x",
    ] {
        assert_eq!(VipName::from_stored(bad), None, "{bad}");
    }
}

#[test]
fn vip_names_sort_as_their_stored_forms() {
    let names = [
        ServiceKey::new("demo", "a").pinned_vip("east"),
        ServiceKey::new("demo", "a").endpoint_vip("east", "a-0"),
        ServiceKey::new("demo", "a-b").global_vip(),
        ServiceKey::new("demo", "a").global_vip(),
        ServiceKey::new("ab", "c").global_vip(),
    ];
    let mut by_type = names.to_vec();
    by_type.sort();
    let mut by_text: Vec<String> = names.iter().map(ToString::to_string).collect();
    by_text.sort();
    let typed: Vec<String> = by_type.iter().map(ToString::to_string).collect();
    assert_eq!(typed, by_text);
}
