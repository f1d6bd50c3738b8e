//! Parsers of single config fields (addresses, names, durations, paths),
//! each naming the field and the fix in its error.

use super::*;

/// Label selector terms (`key: value`), as Kubernetes allows them.
pub(super) fn selector(f: &Field<'_>) -> Result<std::collections::BTreeMap<String, String>, Issue> {
    let entries = f.entries("a mapping of label keys to values")?;
    if entries.is_empty() {
        return Err(f.issue(
            "an empty selector would select every pod; give the gateway pods' labels, such as `app.kubernetes.io/name: fedgw`",
        ));
    }
    entries
        .into_iter()
        .map(|(key, value)| {
            let text = value.text("a label value")?;
            let ok = |s: &str, max: usize| {
                !s.is_empty()
                    && s.len() <= max
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            };
            if !ok(&key, 253) {
                return Err(value.issue(format!("invalid label key {key:?}")));
            }
            if !ok(&text, 63) || text.contains('/') {
                return Err(value.issue(format!(
                    "invalid label value {text:?}: letters, digits, '-', '_' and '.', at most 63 characters"
                )));
            }
            Ok((key, text))
        })
        .collect()
}

/// `FIRST-LAST`, such as `20000-29999`.
pub(super) fn port_range(f: &Field<'_>) -> Result<std::ops::RangeInclusive<u16>, Issue> {
    f.parse("a port range such as 20000-29999", |text| {
        let bad = || format!("invalid port range {text:?}: write FIRST-LAST, such as 20000-29999");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        if a == 0 || a > b {
            return Err(format!(
                "invalid port range {text:?}: the first port must be at least 1 and not above the last"
            ));
        }
        Ok(a..=b)
    })
}

// Value conversions, each reporting at the field it reads.

pub(super) fn non_empty(f: &Field<'_>) -> Result<String, Issue> {
    let text = f.text("a string")?;
    if text.trim().is_empty() {
        return Err(f.issue("must not be empty"));
    }
    Ok(text)
}

pub(super) fn label(f: &Field<'_>, what: &str) -> Result<String, Issue> {
    let text = f.text(&format!("a {what}"))?;
    match label_problem(&text) {
        None => Ok(text),
        Some(problem) => Err(f.issue(format!(
            "invalid {what} {text:?}: {problem}; use a DNS label: lowercase letters, digits and '-', at most 63 characters, such as east or us-east-1"
        ))),
    }
}

pub(super) fn trust_domain(f: &Field<'_>) -> Result<String, Issue> {
    let text = f.text("a trust domain")?;
    match dns_name_problem(&text) {
        None => Ok(text),
        Some(problem) => Err(f.issue(format!(
            "invalid trust domain {text:?}: {problem}; use a lowercase DNS name such as east.fedmesh"
        ))),
    }
}

pub(super) fn zone(f: &Field<'_>) -> Result<String, Issue> {
    let text = f.text("a DNS zone")?;
    let normalized = text.to_ascii_lowercase();
    let normalized = normalized.strip_suffix('.').unwrap_or(&normalized);
    match dns_name_problem(normalized) {
        None => Ok(normalized.to_owned()),
        Some(problem) => Err(f.issue(format!(
            "invalid DNS zone {text:?}: {problem}; use a DNS name such as clusterset.local"
        ))),
    }
}

pub(super) fn ttl(f: &Field<'_>) -> Result<Duration, Issue> {
    let ttl = f.duration()?;
    // RFC 2181 §8: a TTL is an unsigned 32-bit count of seconds of at most 2^31 - 1.
    if ttl.subsec_nanos() != 0 || ttl < Duration::from_secs(1) || ttl.as_secs() > (1 << 31) - 1 {
        return Err(f.issue(format!(
            "invalid TTL {}: DNS TTLs are whole seconds from 1s to 2147483647s; write it like 5s or 1m",
            super::super::format_duration(ttl)
        )));
    }
    Ok(ttl)
}

pub(super) fn path(f: &Field<'_>, base: &Path) -> Result<PathBuf, Issue> {
    let text = non_empty(f)?;
    Ok(resolve(base, Path::new(&text)))
}

/// `path` if absolute, else `base/path` with `.` components dropped.
pub(super) fn resolve(base: &Path, path: &Path) -> PathBuf {
    base.join(path).components().collect()
}

pub(super) fn registry_kind(f: &Field<'_>) -> Result<RegistryKind, Issue> {
    match f.text("static or kubernetes")?.as_str() {
        "static" => Ok(RegistryKind::Static),
        "kubernetes" => Ok(RegistryKind::Kubernetes),
        other => Err(f.issue(format!(
            "unknown registry kind {other:?}: expected static or kubernetes"
        ))),
    }
}

pub(super) fn vip_range(f: &Field<'_>) -> Result<Ipv4Net, Issue> {
    let net = f.parse("an IPv4 CIDR", |text| text.parse::<Ipv4Net>())?;
    if !(8..=30).contains(&net.prefix()) {
        return Err(f.issue(format!(
            "invalid VIP range {net}: the prefix length must be 8 to 30, such as 127.77.0.0/16"
        )));
    }
    Ok(net)
}

pub(super) fn socket_addr(f: &Field<'_>, example: SocketAddr) -> Result<SocketAddr, Issue> {
    f.parse("IP:PORT", |text| {
        text.parse::<SocketAddr>()
            .map_err(|_| format!("invalid address {text:?}: expected IP:PORT such as {example}"))
    })
}

/// A TCP listen address (default `default`), recorded for the conflict check.
pub(super) fn listen(
    s: &Section<'_>,
    key: &str,
    default: SocketAddr,
    listeners: &mut Vec<Listener>,
) -> Result<SocketAddr, Issue> {
    let field = s.field(key);
    let addr = match &field {
        Some(f) => socket_addr(f, default)?,
        None => default,
    };
    listeners.push(Listener::new(
        s.path(key),
        field.and_then(|f| f.line()),
        addr,
        Protocol::Tcp,
    ));
    Ok(addr)
}

/// An optional TCP listen address (unset: not served), recorded for the
/// conflict check when set.
pub(super) fn optional_listen(
    s: &Section<'_>,
    key: &str,
    listeners: &mut Vec<Listener>,
) -> Result<Option<SocketAddr>, Issue> {
    let Some(field) = s.field(key) else {
        return Ok(None);
    };
    let addr = socket_addr(&field, super::super::loopback(15080))?;
    listeners.push(Listener::new(
        s.path(key),
        field.line(),
        addr,
        Protocol::Tcp,
    ));
    Ok(Some(addr))
}

/// The admin API address: loopback or unix only. A relative socket path
/// resolves against `base`.
pub(super) fn admin_listen(f: &Field<'_>, base: &Path) -> Result<AdminListen, Issue> {
    let admin = f.parse("IP:PORT or unix:PATH", AdminListen::parse)?;
    if !admin.is_allowed() {
        let shown = admin.to_string();
        return Err(f.issue(format!(
            "{shown:?} is not a loopback address: the admin API trusts every caller, so it listens only on loopback, such as 127.0.0.1:15000, or on a unix socket, such as unix:/run/fedmesh/admin.sock"
        )));
    }
    let admin = match admin {
        AdminListen::Unix(path) => AdminListen::Unix(resolve(base, &path)),
        tcp => tcp,
    };
    Ok(admin)
}

/// `key` as an address peers dial, defaulting to `listen` (the value of
/// `listen_key`), which must then not be a wildcard.
pub(super) fn advertise(
    s: &Section<'_>,
    key: &str,
    listen_key: &str,
    listen: SocketAddr,
) -> Result<HostPort, Issue> {
    if let Some(f) = s.field(key) {
        let advertise = f.parse("HOST:PORT", |text| text.parse::<HostPort>())?;
        if advertise.port == 0 || advertise.ip().is_some_and(|ip| ip.is_unspecified()) {
            return Err(f.issue(format!(
                "{advertise} cannot be dialed; give the host:port peers reach this listener at, such as gw.example.com:{}",
                listen.port()
            )));
        }
        return Ok(advertise);
    }
    if listen.ip().is_unspecified() {
        return Err(Issue {
            line: s.line(listen_key),
            field: s.path(key),
            message: format!(
                "required because {} is the wildcard address {listen}, which peers cannot dial; set {} to the host:port peers reach, such as east.example.com:{}",
                s.path(listen_key),
                s.path(key),
                listen.port()
            ),
        });
    }
    Ok(HostPort::from_socket_addr(listen))
}

/// A duration above zero (default `default`).
pub(super) fn positive_duration(
    s: &Section<'_>,
    key: &str,
    default: Duration,
) -> Result<Duration, Issue> {
    let Some(f) = s.field(key) else {
        return Ok(default);
    };
    let duration = f.duration()?;
    if duration.is_zero() {
        return Err(f.issue(format!(
            "must be more than 0s; the default is {}",
            super::super::format_duration(default)
        )));
    }
    Ok(duration)
}
