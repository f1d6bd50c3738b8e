//! Name rules for cluster names, gateway names, namespaces, trust domains and
//! DNS zones (RFC 1123 labels, as Kubernetes uses them).

/// Why `name` is not a DNS label (lowercase `a-z`, `0-9` and `-`, 1 to 63
/// characters, starting and ending with a letter or digit), or `None` if it
/// is one.
pub(super) fn label_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > 63 {
        return Some("it is longer than 63 characters");
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some("it has uppercase letters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("only a-z, 0-9 and '-' are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("it must start and end with a letter or digit");
    }
    None
}

/// Why `name` is not a lowercase DNS name (dot-separated labels as in
/// [`label_problem`], at most 253 characters, no trailing dot), or `None` if
/// it is one.
pub(super) fn dns_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters");
    }
    if name.ends_with('.') {
        return Some("it ends with a dot");
    }
    if name.split('.').any(str::is_empty) {
        return Some("it has an empty label (two dots in a row, or a leading dot)");
    }
    name.split('.').find_map(label_problem)
}

/// Why `host` is not a host name usable in `host:port` (like
/// [`dns_name_problem`], but letters of either case), or `None` if it is one.
pub(super) fn host_name_problem(host: &str) -> Option<&'static str> {
    dns_name_problem(&host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_rfc_1123() {
        for good in ["east", "a", "us-east-1", "0abc", &"x".repeat(63)] {
            assert_eq!(label_problem(good), None, "{good}");
        }
        for bad in [
            "",
            "East",
            "-east",
            "east-",
            "ea_st",
            "ea.st",
            &"x".repeat(64),
        ] {
            assert!(label_problem(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn dns_names_are_dotted_labels() {
        assert_eq!(dns_name_problem("clusterset.local"), None);
        assert_eq!(dns_name_problem("east.fedmesh"), None);
        for bad in ["", "a..b", ".a", "a.", "A.b", "a.-b", "a b"] {
            assert!(dns_name_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(host_name_problem("Gateway.Example.COM"), None);
    }
}
