//! SPIFFE IDs (`spiffe://<trust-domain>/<path>`), as the SPIFFE-ID
//! specification defines them, plus the two shapes fedmesh issues:
//! `spiffe://<td>/control` and `spiffe://<td>/gateway/<name>`.

use std::fmt;
use std::str::FromStr;

use super::IdentityError;

const SCHEME: &str = "spiffe://";
/// SPIFFE-ID §2.1: a trust domain name is at most 255 bytes.
const MAX_TRUST_DOMAIN_LEN: usize = 255;
/// SPIFFE-ID §2.3: a SPIFFE ID is at most 2048 bytes.
const MAX_ID_LEN: usize = 2048;
const GATEWAY_PREFIX: &str = "/gateway/";
const CONTROL_PATH: &str = "/control";

/// A SPIFFE ID with a non-empty path: the identity of a workload, taken
/// from the URI SAN of its certificate. Never the IP address or DNS name.
///
/// Displays as `spiffe://<trust-domain><path>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    /// Starts with `/`; segments are non-empty and not `.` or `..`.
    path: String,
}

impl SpiffeId {
    /// Parses and validates a SPIFFE ID.
    ///
    /// # Errors
    ///
    /// [`IdentityError::BadSpiffeId`] when the scheme is not `spiffe://`, the
    /// trust domain is invalid (empty, upper case, characters other than
    /// `a-z 0-9 . - _`), the path is empty or has empty, `.` or `..`
    /// segments or characters other than `a-z A-Z 0-9 . - _`, or the URI
    /// has a query, fragment, port, user info or percent-encoding.
    pub fn parse(uri: &str) -> Result<SpiffeId, IdentityError> {
        let bad = |reason: &str| IdentityError::BadSpiffeId {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        if uri.len() > MAX_ID_LEN {
            return Err(bad("longer than 2048 bytes"));
        }
        let Some(rest) = uri.strip_prefix(SCHEME) else {
            return Err(bad("scheme must be \"spiffe://\" (lower case)"));
        };
        if uri.contains('?') {
            return Err(bad("query parts are not allowed"));
        }
        if uri.contains('#') {
            return Err(bad("fragments are not allowed"));
        }
        let (td, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if td.contains('@') {
            return Err(bad("user info is not allowed"));
        }
        if td.contains(':') {
            return Err(bad("a port is not allowed"));
        }
        trust_domain_rule(td).map_err(|reason| bad(&format!("trust domain {td:?}: {reason}")))?;
        path_rule(path).map_err(|reason| bad(&format!("path {path:?}: {reason}")))?;
        Ok(SpiffeId {
            trust_domain: td.to_owned(),
            path: path.to_owned(),
        })
    }

    /// Builds a SPIFFE ID from a trust domain and a path such as
    /// `/gateway/gw-1`, checking both.
    ///
    /// # Errors
    ///
    /// [`IdentityError::BadSpiffeId`] as for [`SpiffeId::parse`].
    pub fn new(trust_domain: &str, path: &str) -> Result<SpiffeId, IdentityError> {
        SpiffeId::parse(&format!("{SCHEME}{trust_domain}{path}"))
    }

    /// The control plane's ID, `spiffe://<trust_domain>/control`.
    ///
    /// The trust domain is not checked here: pass one that
    /// [`validate_trust_domain`] accepted (config validation does). Use
    /// [`SpiffeId::new`] for unchecked input.
    pub fn control(trust_domain: &str) -> SpiffeId {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            path: CONTROL_PATH.to_owned(),
        }
    }

    /// A gateway's ID, `spiffe://<trust_domain>/gateway/<name>`.
    ///
    /// Neither argument is checked here: pass a validated trust domain and a
    /// gateway name that is a DNS label (config validation does). Use
    /// [`SpiffeId::new`] for unchecked input.
    pub fn gateway(trust_domain: &str, name: &str) -> SpiffeId {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            path: format!("{GATEWAY_PREFIX}{name}"),
        }
    }

    /// The trust domain, for example `east.fedmesh`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The path, starting with `/`, for example `/control` or `/gateway/gw-1`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this is a control plane's ID (path `/control`).
    pub fn is_control(&self) -> bool {
        self.path == CONTROL_PATH
    }

    /// The gateway name if this is a gateway's ID (path `/gateway/<name>`,
    /// with exactly one segment after `/gateway/`).
    pub fn gateway_name(&self) -> Option<&str> {
        self.path
            .strip_prefix(GATEWAY_PREFIX)
            .filter(|name| !name.is_empty() && !name.contains('/'))
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}{}", self.trust_domain, self.path)
    }
}

impl FromStr for SpiffeId {
    type Err = IdentityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpiffeId::parse(s)
    }
}

/// Checks a trust domain name against SPIFFE-ID §2.1: 1 to 255 bytes of
/// lower-case letters, digits, `.`, `-` and `_`.
///
/// # Errors
///
/// [`IdentityError::BadTrustDomain`] naming the rule broken.
pub fn validate_trust_domain(td: &str) -> Result<(), IdentityError> {
    trust_domain_rule(td).map_err(|reason| IdentityError::BadTrustDomain {
        td: td.to_owned(),
        reason: reason.to_owned(),
    })
}

fn trust_domain_rule(td: &str) -> Result<(), &'static str> {
    if td.is_empty() {
        return Err("must not be empty");
    }
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err("longer than 255 bytes");
    }
    if td.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("must be lower case");
    }
    if !td
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err("only a-z, 0-9, '.', '-' and '_' are allowed");
    }
    Ok(())
}

/// SPIFFE-ID §2.2 path rules; fedmesh IDs always name a workload, so the
/// path must not be empty.
fn path_rule(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("must not be empty (fedmesh IDs name a workload)");
    }
    let Some(segments) = path.strip_prefix('/') else {
        return Err("must start with '/'");
    };
    for segment in segments.split('/') {
        match segment {
            "" => return Err("empty segments and trailing '/' are not allowed"),
            "." | ".." => return Err("'.' and '..' segments are not allowed"),
            _ => {}
        }
        if segment.contains('%') {
            return Err("percent-encoding is not allowed");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err("only a-z, A-Z, 0-9, '.', '-' and '_' are allowed in segments");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn spiffe_id_parses_control_and_gateway_ids() {
        let control = SpiffeId::parse("spiffe://east.fedmesh/control").expect("valid");
        assert_eq!(control.trust_domain(), "east.fedmesh");
        assert_eq!(control.path(), "/control");
        assert!(control.is_control());
        assert_eq!(control.gateway_name(), None);
        assert_eq!(control, SpiffeId::control("east.fedmesh"));
        assert_eq!(control.to_string(), "spiffe://east.fedmesh/control");

        let gw = SpiffeId::parse("spiffe://east.fedmesh/gateway/gw-1").expect("valid");
        assert_eq!(gw, SpiffeId::gateway("east.fedmesh", "gw-1"));
        assert_eq!(gw.gateway_name(), Some("gw-1"));
        assert!(!gw.is_control());
        assert_eq!(gw.path(), "/gateway/gw-1");
        assert_eq!(
            "spiffe://east.fedmesh/gateway/gw-1"
                .parse::<SpiffeId>()
                .ok(),
            Some(gw)
        );
        assert_eq!(
            SpiffeId::new("east.fedmesh", "/control").ok(),
            Some(SpiffeId::control("east.fedmesh"))
        );
    }

    #[test]
    fn spiffe_id_parse_rejects_each_malformed_shape() {
        let long = format!("spiffe://east.fedmesh/{}", "a".repeat(2048));
        let bad = [
            "",
            "east.fedmesh/control",
            "https://east.fedmesh/control",
            "SPIFFE://east.fedmesh/control",
            "spiffe:/east.fedmesh/control",
            "spiffe://East.fedmesh/control",
            "spiffe://east fedmesh/control",
            "spiffe:///control",
            "spiffe://east.fedmesh",
            "spiffe://east.fedmesh/",
            "spiffe://east.fedmesh//control",
            "spiffe://east.fedmesh/control/",
            "spiffe://east.fedmesh/./control",
            "spiffe://east.fedmesh/gateway/..",
            "spiffe://east.fedmesh/control?x=1",
            "spiffe://east.fedmesh/control#top",
            "spiffe://east.fedmesh:443/control",
            "spiffe://admin@east.fedmesh/control",
            "spiffe://east.fedmesh/con%74rol",
            "spiffe://east.fedmesh/con trol",
            long.as_str(),
        ];
        for uri in bad {
            match SpiffeId::parse(uri) {
                Err(IdentityError::BadSpiffeId { uri: got, reason }) => {
                    assert_eq!(got, uri);
                    assert!(!reason.is_empty());
                }
                other => panic!("{uri:?} should be rejected, got {other:?}"),
            }
        }
    }

    #[test]
    fn spiffe_id_parse_errors_say_what_is_wrong() {
        let msg = |uri: &str| SpiffeId::parse(uri).expect_err("invalid").to_string();
        assert!(msg("spiffe://east.fedmesh/control?x=1").contains("query"));
        assert!(msg("spiffe://east.fedmesh/control#f").contains("fragment"));
        assert!(msg("spiffe://East.fedmesh/control").contains("lower case"));
        assert!(msg("spiffe://east.fedmesh").contains("must not be empty"));
        assert!(msg("http://east.fedmesh/control").contains("scheme"));
    }

    #[test]
    fn spiffe_id_accepts_the_full_allowed_alphabet() {
        let id = SpiffeId::parse("spiffe://a-b_c.9/Gate_way/x.y-Z0").expect("valid");
        assert_eq!(id.trust_domain(), "a-b_c.9");
        assert_eq!(id.path(), "/Gate_way/x.y-Z0");
    }

    #[test]
    fn gateway_name_needs_exactly_one_segment_after_gateway() {
        let name = |uri: &str| {
            SpiffeId::parse(uri)
                .expect("valid")
                .gateway_name()
                .map(str::to_owned)
        };
        assert_eq!(name("spiffe://e.fedmesh/gateway/a/b"), None);
        assert_eq!(name("spiffe://e.fedmesh/gatewayx/a"), None);
        assert_eq!(name("spiffe://e.fedmesh/gateway"), None);
        assert_eq!(
            name("spiffe://e.fedmesh/gateway/gw-2"),
            Some("gw-2".to_owned())
        );
    }

    #[test]
    fn trust_domain_validation_follows_the_spiffe_alphabet() {
        for ok in ["east.fedmesh", "a", "x_y-z.0"] {
            validate_trust_domain(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "East.fedmesh",
            "east/fedmesh",
            "east:1",
            "é.fedmesh",
            long.as_str(),
        ] {
            assert!(
                matches!(validate_trust_domain(bad), Err(IdentityError::BadTrustDomain { td, .. }) if td == bad),
                "{bad:?} should be rejected"
            );
        }
    }
}
