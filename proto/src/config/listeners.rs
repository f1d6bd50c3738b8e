//! The check that no two listeners of the config share a protocol, address
//! and port, made before anything binds.

use std::net::SocketAddr;

use super::yaml::Issue;

/// The transport a listener binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }
}

/// One listen address of the config and where it was set.
#[derive(Debug, Clone)]
pub(super) struct Listener {
    field: String,
    /// The line of the value; `None` when the address is a default.
    line: Option<usize>,
    addr: SocketAddr,
    protocol: Protocol,
}

impl Listener {
    pub(super) fn new(
        field: String,
        line: Option<usize>,
        addr: SocketAddr,
        protocol: Protocol,
    ) -> Self {
        Listener {
            field,
            line,
            addr,
            protocol,
        }
    }

    fn describe(&self) -> String {
        match self.line {
            Some(line) => format!("{} ({}, line {line})", self.field, self.addr),
            None => format!("{} ({}, the default)", self.field, self.addr),
        }
    }
}

/// Whether binding both would fail: same protocol and port (never port 0,
/// which picks a free port), and the same IP, or a wildcard (`0.0.0.0`, `::`)
/// against any IP of its family.
fn conflict(a: &Listener, b: &Listener) -> bool {
    let (x, y) = (a.addr, b.addr);
    a.protocol == b.protocol
        && x.port() != 0
        && x.port() == y.port()
        && (x.ip() == y.ip()
            || (x.is_ipv4() == y.is_ipv4() && (x.ip().is_unspecified() || y.ip().is_unspecified())))
}

/// The first pair of `listeners` that would collide, as an issue naming both
/// fields. It is reported at the one set in the file (the later one when both
/// are), since that is the line to change.
pub(super) fn check_conflicts(listeners: &[Listener]) -> Result<(), Issue> {
    for (i, b) in listeners.iter().enumerate() {
        let Some(a) = listeners[..i].iter().find(|a| conflict(a, b)) else {
            continue;
        };
        let (here, other) = match (a.line, b.line) {
            (Some(la), Some(lb)) if la > lb => (a, b),
            (Some(_), None) => (a, b),
            _ => (b, a),
        };
        return Err(Issue {
            line: here.line.or(other.line),
            field: here.field.clone(),
            message: format!(
                "{} {} conflicts with {}: two {} listeners cannot share an address and port; give one of them another port",
                here.protocol.name(),
                here.addr,
                other.describe(),
                here.protocol.name()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(field: &str, line: Option<usize>, addr: &str) -> Listener {
        Listener::new(
            field.to_owned(),
            line,
            addr.parse().expect("addr"),
            Protocol::Tcp,
        )
    }

    #[test]
    fn port_zero_never_conflicts() {
        let l = [
            tcp("a", Some(1), "127.0.0.1:0"),
            tcp("b", Some(2), "127.0.0.1:0"),
        ];
        assert_eq!(check_conflicts(&l), Ok(()));
    }

    #[test]
    fn wildcard_conflicts_only_within_its_family() {
        let v4 = [
            tcp("a", Some(1), "0.0.0.0:80"),
            tcp("b", Some(2), "127.0.0.2:80"),
        ];
        assert!(check_conflicts(&v4).is_err());
        let v6 = [tcp("a", Some(1), "[::]:80"), tcp("b", Some(2), "[::1]:80")];
        assert!(check_conflicts(&v6).is_err());
        let mixed = [
            tcp("a", Some(1), "[::]:80"),
            tcp("b", Some(2), "127.0.0.1:80"),
        ];
        assert_eq!(check_conflicts(&mixed), Ok(()));
        let other_ip = [
            tcp("a", Some(1), "127.0.0.1:80"),
            tcp("b", Some(2), "127.0.0.2:80"),
        ];
        assert_eq!(check_conflicts(&other_ip), Ok(()));
    }

    #[test]
    fn different_protocols_do_not_conflict() {
        let udp = Listener::new(
            "u".to_owned(),
            Some(1),
            "127.0.0.1:53".parse().expect("addr"),
            Protocol::Udp,
        );
        assert_eq!(
            check_conflicts(&[udp, tcp("t", Some(2), "127.0.0.1:53")]),
            Ok(())
        );
    }

    #[test]
    fn conflict_is_reported_at_the_explicit_field_naming_the_default_one() {
        let l = [
            tcp("defaulted", None, "127.0.0.1:80"),
            tcp("explicit", Some(4), "127.0.0.1:80"),
        ];
        let issue = check_conflicts(&l).expect_err("conflict");
        assert_eq!((issue.field.as_str(), issue.line), ("explicit", Some(4)));
        assert!(
            issue
                .message
                .contains("defaulted (127.0.0.1:80, the default)"),
            "{}",
            issue.message
        );
        let l = [
            tcp("late", Some(9), "127.0.0.1:80"),
            tcp("early", Some(3), "127.0.0.1:80"),
        ];
        let issue = check_conflicts(&l).expect_err("conflict");
        assert_eq!((issue.field.as_str(), issue.line), ("late", Some(9)));
        assert!(
            issue.message.contains("early (127.0.0.1:80, line 3)"),
            "{}",
            issue.message
        );
    }
}
