//! What a service port speaks: opaque TCP, or HTTP that gateways handle
//! per request (DESIGN.md, "Wave 2 contract → HTTP-aware services").
//!
//! The one rule, decided once by the exporting cluster's registry and then
//! carried in the export (`ServicePort.app_protocol`): a port is HTTP when
//! its Kubernetes `appProtocol` is `http`, `kubernetes.io/h2c` or `grpc`;
//! without `appProtocol`, when its name is `http`, `http2`, `grpc` or starts
//! with `http-`, `h2c-` or `grpc-`. Everything else is TCP. On the wire the
//! value is one of `tcp`, `http`, `h2c`, `grpc`; empty (a cluster on an
//! earlier release) is `tcp`.

use std::fmt;

/// The protocol of one service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum AppProtocol {
    /// Opaque bytes, carried per connection.
    #[default]
    Tcp,
    /// HTTP/1.1 to the endpoints (clients may still speak h2c to the
    /// gateway).
    Http,
    /// HTTP/2 with prior knowledge (cleartext) to the endpoints.
    H2c,
    /// gRPC: HTTP/2 with prior knowledge to the endpoints.
    Grpc,
}

/// A wire value that is none of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown app protocol {0:?}: expected tcp, http, h2c or grpc")]
pub struct UnknownAppProtocol(pub String);

impl AppProtocol {
    /// Decides a port's protocol from its `appProtocol` (if set) or else
    /// its name, by the rule in the module doc. An `appProtocol` this rule
    /// does not know (`kubernetes.io/ws`, `mysql`, ...) is TCP: the port
    /// then works as before, byte for byte.
    pub fn detect(app_protocol: Option<&str>, port_name: &str) -> AppProtocol {
        if let Some(declared) = app_protocol.filter(|a| !a.is_empty()) {
            return match declared.to_ascii_lowercase().as_str() {
                "http" => AppProtocol::Http,
                "kubernetes.io/h2c" => AppProtocol::H2c,
                "grpc" => AppProtocol::Grpc,
                _ => AppProtocol::Tcp,
            };
        }
        let name = port_name.to_ascii_lowercase();
        match name.as_str() {
            "http" => AppProtocol::Http,
            "http2" => AppProtocol::H2c,
            "grpc" => AppProtocol::Grpc,
            n if n.starts_with("http-") => AppProtocol::Http,
            n if n.starts_with("h2c-") => AppProtocol::H2c,
            n if n.starts_with("grpc-") => AppProtocol::Grpc,
            _ => AppProtocol::Tcp,
        }
    }

    /// The wire value (`ServicePort.app_protocol`).
    pub fn as_wire(self) -> &'static str {
        match self {
            AppProtocol::Tcp => "tcp",
            AppProtocol::Http => "http",
            AppProtocol::H2c => "h2c",
            AppProtocol::Grpc => "grpc",
        }
    }

    /// Parses a wire value; empty is TCP (a peer on an earlier release).
    ///
    /// # Errors
    /// [`UnknownAppProtocol`] naming the value.
    pub fn from_wire(value: &str) -> Result<AppProtocol, UnknownAppProtocol> {
        match value {
            "" | "tcp" => Ok(AppProtocol::Tcp),
            "http" => Ok(AppProtocol::Http),
            "h2c" => Ok(AppProtocol::H2c),
            "grpc" => Ok(AppProtocol::Grpc),
            other => Err(UnknownAppProtocol(other.to_string())),
        }
    }

    /// Whether gateways handle the port per request.
    pub fn is_http(self) -> bool {
        self != AppProtocol::Tcp
    }

    /// Whether endpoints are spoken to in HTTP/2 with prior knowledge
    /// (h2c and gRPC) rather than HTTP/1.1.
    pub fn endpoint_h2(self) -> bool {
        matches!(self, AppProtocol::H2c | AppProtocol::Grpc)
    }

    /// How `fedctl services` shows it: `TCP`, `HTTP`, `H2C`, `GRPC`.
    pub fn label(self) -> &'static str {
        match self {
            AppProtocol::Tcp => "TCP",
            AppProtocol::Http => "HTTP",
            AppProtocol::H2c => "H2C",
            AppProtocol::Grpc => "GRPC",
        }
    }
}

impl fmt::Display for AppProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_protocol_wins_over_the_port_name() {
        assert_eq!(AppProtocol::detect(Some("http"), "db"), AppProtocol::Http);
        assert_eq!(
            AppProtocol::detect(Some("kubernetes.io/h2c"), "x"),
            AppProtocol::H2c
        );
        assert_eq!(AppProtocol::detect(Some("grpc"), ""), AppProtocol::Grpc);
        assert_eq!(
            AppProtocol::detect(Some("kubernetes.io/ws"), "http"),
            AppProtocol::Tcp,
            "an unknown appProtocol is opaque TCP, whatever the name"
        );
    }

    #[test]
    fn without_app_protocol_the_port_name_decides() {
        let cases = [
            ("http", AppProtocol::Http),
            ("http2", AppProtocol::H2c),
            ("grpc", AppProtocol::Grpc),
            ("http-web", AppProtocol::Http),
            ("h2c-api", AppProtocol::H2c),
            ("grpc-api", AppProtocol::Grpc),
            ("HTTP", AppProtocol::Http),
            ("https", AppProtocol::Tcp),
            ("httpx", AppProtocol::Tcp),
            ("redis", AppProtocol::Tcp),
            ("", AppProtocol::Tcp),
        ];
        for (name, want) in cases {
            assert_eq!(AppProtocol::detect(None, name), want, "{name}");
            assert_eq!(AppProtocol::detect(Some(""), name), want, "{name}");
        }
    }

    #[test]
    fn wire_values_round_trip_and_empty_is_tcp() {
        for p in [
            AppProtocol::Tcp,
            AppProtocol::Http,
            AppProtocol::H2c,
            AppProtocol::Grpc,
        ] {
            assert_eq!(AppProtocol::from_wire(p.as_wire()), Ok(p));
        }
        assert_eq!(AppProtocol::from_wire(""), Ok(AppProtocol::Tcp));
        let err = AppProtocol::from_wire("quic").unwrap_err();
        assert!(err.to_string().contains("\"quic\""), "{err}");
    }
}
