//! Address types of the config: [`HostPort`] (what peers dial),
//! [`AdminListen`] (TCP or unix socket for the admin API) and [`Ipv4Net`] (the
//! VIP range).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use super::names::host_name_problem;

/// A `host:port` that others dial: the host is a DNS name, an IPv4 address or
/// an IPv6 address (written `[v6]:port`).
///
/// Unlike [`SocketAddr`], the host may be a name, so that a cluster behind a
/// load balancer or NAT can advertise an address it cannot bind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// A DNS name or an IP address, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// The `host:port` of a socket address.
    pub fn from_socket_addr(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.parse::<Ipv6Addr>().is_ok() {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for HostPort {
    type Err = String;

    /// Parses `host:port`, `a.b.c.d:port` or `[v6]:port`.
    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = |why: &str| {
            format!(
                "invalid address {text:?}: {why}; expected HOST:PORT such as gw.example.com:15443, 192.0.2.10:15443 or [2001:db8::1]:15443"
            )
        };
        let (host, port) = if let Some(bracketed) = text.strip_prefix('[') {
            let (v6, port) = bracketed
                .split_once("]:")
                .ok_or_else(|| invalid("a bracketed IPv6 address must be followed by :PORT"))?;
            v6.parse::<Ipv6Addr>()
                .map_err(|_| invalid(&format!("{v6:?} is not an IPv6 address")))?;
            (v6, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| invalid("the port is missing"))?;
            if host.contains(':') {
                return Err(invalid("IPv6 addresses need brackets"));
            }
            if host.parse::<Ipv4Addr>().is_err()
                && let Some(problem) = host_name_problem(host)
            {
                return Err(invalid(&format!(
                    "the host {host:?} is not a host name: {problem}"
                )));
            }
            (host, port)
        };
        let port = port.parse::<u16>().map_err(|_| {
            invalid(&format!(
                "the port {port:?} is not a number from 0 to 65535"
            ))
        })?;
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

/// Where the admin API listens: a TCP address or a unix socket.
///
/// The admin API trusts its callers, so `fedctl run` accepts only addresses
/// for which [`AdminListen::is_allowed`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AdminListen {
    /// `IP:PORT`.
    Tcp(SocketAddr),
    /// `unix:PATH`: a unix domain socket at `PATH`.
    Unix(PathBuf),
}

impl AdminListen {
    /// Parses `IP:PORT` or `unix:PATH` (as given to `--admin`). Does not check
    /// that the address is loopback: see [`AdminListen::is_allowed`].
    ///
    /// # Errors
    ///
    /// Returns a message naming the text and the two accepted forms when it is
    /// neither.
    pub fn parse(text: &str) -> Result<AdminListen, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!(
                    "invalid admin address {text:?}: the socket path is missing; write unix:/path/to/admin.sock"
                ));
            }
            return Ok(AdminListen::Unix(PathBuf::from(path)));
        }
        text.parse::<SocketAddr>().map(AdminListen::Tcp).map_err(|_| {
            format!(
                "invalid admin address {text:?}: expected a loopback IP:PORT such as 127.0.0.1:15000, or unix:/path/to/admin.sock"
            )
        })
    }

    /// Whether the admin API may listen here: a loopback IP (IPv4 `127.0.0.0/8`,
    /// `::1`, or an IPv4-mapped loopback) or a unix socket.
    pub fn is_allowed(&self) -> bool {
        match self {
            AdminListen::Tcp(addr) => addr.ip().to_canonical().is_loopback(),
            AdminListen::Unix(_) => true,
        }
    }
}

impl fmt::Display for AdminListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminListen::Tcp(addr) => write!(f, "{addr}"),
            AdminListen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl FromStr for AdminListen {
    type Err = String;

    /// Same as [`AdminListen::parse`].
    fn from_str(text: &str) -> Result<Self, String> {
        AdminListen::parse(text)
    }
}

/// An IPv4 network in CIDR form, such as `127.77.0.0/16`.
///
/// The address is always the network address: host bits are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix: u8,
}

/// The default `gateway.vipRange`, `127.77.0.0/16`.
pub(super) const DEFAULT_VIP_RANGE: Ipv4Net = Ipv4Net {
    network: Ipv4Addr::new(127, 77, 0, 0),
    prefix: 16,
};

impl Ipv4Net {
    /// The network `network/prefix`.
    ///
    /// # Errors
    ///
    /// Returns a message when `prefix` is above 32 or `network` has bits set
    /// past the prefix (naming the network address to write instead).
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        if prefix > 32 {
            return Err(format!(
                "invalid network {network}/{prefix}: the prefix length must be 0 to 32"
            ));
        }
        let net = Ipv4Net { network, prefix };
        let masked = Ipv4Addr::from(u32::from(network) & net.mask());
        if masked != network {
            return Err(format!(
                "invalid network {network}/{prefix}: the address has host bits set; write {masked}/{prefix}"
            ));
        }
        Ok(net)
    }

    /// The network address (the first address of the range).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `addr` is in the range.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }

    /// How many addresses the range holds (2^(32 − prefix)), network and
    /// broadcast addresses included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// The `n`-th address of the range, counting the network address as 0;
    /// `None` when `n >= self.size()`.
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        if n >= self.size() {
            return None;
        }
        let offset = u32::try_from(n).ok()?;
        Some(Ipv4Addr::from(u32::from(self.network) + offset))
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    /// Parses `a.b.c.d/n`.
    fn from_str(text: &str) -> Result<Self, String> {
        let invalid =
            || format!("invalid network {text:?}: expected an IPv4 CIDR such as 127.77.0.0/16");
        let (addr, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let addr = addr.parse::<Ipv4Addr>().map_err(|_| invalid())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let prefix = prefix.parse::<u8>().map_err(|_| invalid())?;
        Ipv4Net::new(addr, prefix)
    }
}

/// Parses a DNS upstream: `IP:PORT`, or a bare `IP` meaning port 53.
pub(super) fn parse_upstream(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("invalid upstream {text:?}: expected IP:PORT or IP (port 53), such as 192.0.2.53:53 or [2001:db8::53]:53")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parses_names_ipv4_and_bracketed_ipv6() {
        let hp: HostPort = "gw.example.com:15443".parse().expect("name");
        assert_eq!((hp.host.as_str(), hp.port), ("gw.example.com", 15443));
        let hp: HostPort = "[2001:db8::1]:15443".parse().expect("v6");
        assert_eq!(hp.host, "2001:db8::1");
        assert_eq!(hp.to_string(), "[2001:db8::1]:15443");
        let hp: HostPort = "127.0.0.1:1".parse().expect("v4");
        assert_eq!(hp.ip(), Some(IpAddr::from([127, 0, 0, 1])));
        let from_addr = HostPort::from_socket_addr("[::1]:80".parse().expect("addr"));
        assert_eq!(from_addr.to_string(), "[::1]:80");
    }

    #[test]
    fn host_port_rejects_missing_port_bad_host_and_bare_ipv6() {
        for bad in [
            "gw.example.com",
            "gw:99999",
            "gw:",
            "::1:80",
            "[::1]80",
            "bad_host:1",
            ":80",
        ] {
            let err = bad.parse::<HostPort>().expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn admin_listen_parses_tcp_and_unix_and_knows_what_is_allowed() {
        let unix = AdminListen::parse("unix:/tmp/x.sock").expect("unix");
        assert_eq!(unix, AdminListen::Unix(PathBuf::from("/tmp/x.sock")));
        assert_eq!(unix.to_string(), "unix:/tmp/x.sock");
        assert!(unix.is_allowed());
        let tcp = AdminListen::parse("127.0.0.1:15000").expect("tcp");
        assert_eq!(tcp.to_string(), "127.0.0.1:15000");
        assert!(tcp.is_allowed());
        assert!(AdminListen::parse("[::1]:15000").expect("v6").is_allowed());
        assert!(
            AdminListen::parse("[::ffff:127.0.0.1]:1")
                .expect("mapped")
                .is_allowed()
        );
        let public = AdminListen::parse("0.0.0.0:15000").expect("parses without loopback check");
        assert!(!public.is_allowed());
        assert!(AdminListen::parse("unix:").is_err());
        assert!(AdminListen::parse("localhost:15000").is_err());
    }

    #[test]
    fn ipv4_net_parses_and_counts_its_addresses() {
        let net: Ipv4Net = "127.77.0.0/16".parse().expect("net");
        assert_eq!(net.network(), Ipv4Addr::new(127, 77, 0, 0));
        assert_eq!(net.prefix(), 16);
        assert_eq!(net.size(), 65_536);
        assert_eq!(net.nth(0), Some(Ipv4Addr::new(127, 77, 0, 0)));
        assert_eq!(net.nth(257), Some(Ipv4Addr::new(127, 77, 1, 1)));
        assert_eq!(net.nth(65_535), Some(Ipv4Addr::new(127, 77, 255, 255)));
        assert_eq!(net.nth(65_536), None);
        assert!(net.contains(Ipv4Addr::new(127, 77, 200, 3)));
        assert!(!net.contains(Ipv4Addr::new(127, 78, 0, 0)));
        assert_eq!(net.to_string(), "127.77.0.0/16");
        let all: Ipv4Net = "0.0.0.0/0".parse().expect("all");
        assert_eq!(all.size(), 1 << 32);
        assert_eq!(all.nth(u64::from(u32::MAX)), Some(Ipv4Addr::BROADCAST));
        let one: Ipv4Net = "10.0.0.1/32".parse().expect("one");
        assert_eq!(
            (one.size(), one.nth(0), one.nth(1)),
            (1, Some(Ipv4Addr::new(10, 0, 0, 1)), None)
        );
    }

    #[test]
    fn ipv4_net_rejects_host_bits_and_bad_prefixes() {
        let err = "127.77.0.1/16".parse::<Ipv4Net>().expect_err("host bits");
        assert!(err.contains("write 127.77.0.0/16"), "{err}");
        for bad in [
            "127.77.0.0",
            "127.77.0.0/33",
            "127.77.0.0/+8",
            "127.77.0.0/",
            "::1/64",
            "x/8",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
    }

    #[test]
    fn upstream_port_defaults_to_53() {
        assert_eq!(
            parse_upstream("192.0.2.53"),
            Ok("192.0.2.53:53".parse().expect("addr"))
        );
        assert_eq!(
            parse_upstream("2001:db8::53"),
            Ok("[2001:db8::53]:53".parse().expect("addr"))
        );
        assert_eq!(
            parse_upstream("192.0.2.53:5353"),
            Ok("192.0.2.53:5353".parse().expect("addr"))
        );
        assert!(parse_upstream("dns.google").is_err());
    }
}
