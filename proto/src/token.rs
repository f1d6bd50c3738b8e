//! Join tokens (`fedmesh-join-v1.…`) and gateway bootstrap tokens
//! (`fedmesh-gw-v1.…`): opaque strings a user copies between machines.
//!
//! Both are `PREFIX` + unpadded base64url of a payload followed by an
//! 8-byte check (the first bytes of SHA-256 over prefix and payload). Any
//! altered character is detected: a changed payload byte fails the check,
//! and decoding must re-encode to exactly the input, so even unused
//! trailing bits cannot change silently.
//!
//! Join payload: address length (1 byte), the issuer's `peeringAdvertise`
//! address, the SHA-256 pin of the issuer's CA public key (32 bytes), and a
//! random secret (32 bytes). Only the secret's SHA-256 is stored by the
//! issuer. Bootstrap payload: secret (32) and the control plane's CA pin
//! (32), so a gateway can check whom it talks to before sending the secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;

/// Prefix of join tokens.
pub const JOIN_PREFIX: &str = "fedmesh-join-v1.";
/// Prefix of gateway bootstrap tokens.
pub const BOOTSTRAP_PREFIX: &str = "fedmesh-gw-v1.";
const CHECK_LEN: usize = 8;

/// Why a token string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Wrong or missing prefix.
    #[error("not a {kind} token: it must start with {prefix:?}")]
    Prefix {
        /// Which kind was expected.
        kind: &'static str,
        /// The expected prefix.
        prefix: &'static str,
    },
    /// Damaged: bad characters, wrong length, or failed integrity check.
    #[error("the {kind} token is damaged ({reason}); copy it again in full, exactly as printed")]
    Damaged {
        /// Which kind.
        kind: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
}

/// What `fedctl join` needs to reach and verify the issuing cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The issuer's peering address (host:port).
    pub address: String,
    /// SHA-256 of the issuer's CA public key.
    pub pin: [u8; 32],
    /// The single-use secret.
    pub secret: [u8; 32],
}

impl JoinToken {
    /// A token for `address` and `pin` with a fresh random secret.
    ///
    /// # Errors
    /// When the address is longer than 255 bytes or the system has no
    /// randomness.
    pub fn generate(address: &str, pin: [u8; 32]) -> Result<Self, String> {
        if address.len() > 255 {
            return Err(format!(
                "peering address {address:?} is longer than 255 bytes"
            ));
        }
        Ok(Self {
            address: address.to_string(),
            pin,
            secret: random_secret()?,
        })
    }

    /// The token string.
    pub fn encode(&self) -> String {
        let mut payload = Vec::with_capacity(1 + self.address.len() + 64);
        // The length fits: `generate` refuses longer addresses.
        payload.push(u8::try_from(self.address.len()).unwrap_or(u8::MAX));
        payload.extend_from_slice(self.address.as_bytes());
        payload.extend_from_slice(&self.pin);
        payload.extend_from_slice(&self.secret);
        seal(JOIN_PREFIX, payload)
    }

    /// Parses and checks a token string.
    ///
    /// # Errors
    /// When the prefix is wrong or any character was altered.
    pub fn decode(text: &str) -> Result<Self, TokenError> {
        const KIND: &str = "join";
        let payload = open(text.trim(), JOIN_PREFIX, KIND)?;
        let damaged = |reason| TokenError::Damaged { kind: KIND, reason };
        let (&len, rest) = payload.split_first().ok_or(damaged("empty"))?;
        let len = usize::from(len);
        if rest.len() != len + 64 {
            return Err(damaged("wrong length"));
        }
        let address = std::str::from_utf8(&rest[..len])
            .map_err(|_| damaged("address is not text"))?
            .to_string();
        let mut pin = [0u8; 32];
        pin.copy_from_slice(&rest[len..len + 32]);
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&rest[len + 32..]);
        Ok(Self {
            address,
            pin,
            secret,
        })
    }
}

/// What a gateway presents to its control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The secret the control plane checks.
    pub secret: [u8; 32],
    /// SHA-256 of the control plane's CA public key.
    pub pin: [u8; 32],
}

impl BootstrapToken {
    /// A new token with a random secret.
    ///
    /// # Errors
    /// When the system has no randomness.
    pub fn generate(pin: [u8; 32]) -> Result<Self, String> {
        Ok(Self {
            secret: random_secret()?,
            pin,
        })
    }

    /// The token string.
    pub fn encode(&self) -> String {
        let mut payload = self.secret.to_vec();
        payload.extend_from_slice(&self.pin);
        seal(BOOTSTRAP_PREFIX, payload)
    }

    /// Parses and checks a token string.
    ///
    /// # Errors
    /// When the prefix is wrong or any character was altered.
    pub fn decode(text: &str) -> Result<Self, TokenError> {
        const KIND: &str = "gateway bootstrap";
        let payload = open(text.trim(), BOOTSTRAP_PREFIX, KIND)?;
        if payload.len() != 64 {
            return Err(TokenError::Damaged {
                kind: KIND,
                reason: "wrong length",
            });
        }
        let mut secret = [0u8; 32];
        secret.copy_from_slice(&payload[..32]);
        let mut pin = [0u8; 32];
        pin.copy_from_slice(&payload[32..]);
        Ok(Self { secret, pin })
    }
}

/// SHA-256 of a secret, hex: what the issuer stores.
pub fn secret_hash_hex(secret: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret).as_ref())
}

/// Compares two secrets in constant time.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    // Fold every byte so the time taken does not depend on where they differ.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_secret() -> Result<[u8; 32], String> {
    let mut secret = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| "the system random number generator failed".to_string())?;
    Ok(secret)
}

fn check(prefix: &str, payload: &[u8]) -> [u8; CHECK_LEN] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prefix.as_bytes());
    ctx.update(payload);
    let digest = ctx.finish();
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&digest.as_ref()[..CHECK_LEN]);
    out
}

fn seal(prefix: &str, mut payload: Vec<u8>) -> String {
    let sum = check(prefix, &payload);
    payload.extend_from_slice(&sum);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(payload))
}

fn open(text: &str, prefix: &'static str, kind: &'static str) -> Result<Vec<u8>, TokenError> {
    let damaged = |reason| TokenError::Damaged { kind, reason };
    let body = text
        .strip_prefix(prefix)
        .ok_or(TokenError::Prefix { kind, prefix })?;
    let mut raw = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| damaged("it contains characters that are not base64url"))?;
    if URL_SAFE_NO_PAD.encode(&raw) != body {
        return Err(damaged("integrity check failed"));
    }
    if raw.len() < CHECK_LEN {
        return Err(damaged("too short"));
    }
    let sum = raw.split_off(raw.len() - CHECK_LEN);
    if check(prefix, &raw) != sum.as_slice() {
        return Err(damaged("integrity check failed"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> JoinToken {
        JoinToken::generate("127.0.1.1:15017", [7u8; 32]).unwrap()
    }

    #[test]
    fn join_token_round_trips() {
        let t = sample();
        let s = t.encode();
        assert!(s.starts_with("fedmesh-join-v1."));
        assert_eq!(JoinToken::decode(&s).unwrap(), t);
        assert_eq!(JoinToken::decode(&format!("  {s}\n")).unwrap(), t);
    }

    #[test]
    fn every_altered_character_is_detected() {
        let s = sample().encode();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
        for i in 0..s.len() {
            for c in alphabet.chars() {
                let mut altered: Vec<char> = s.chars().collect();
                if altered[i] == c {
                    continue;
                }
                altered[i] = c;
                let altered: String = altered.into_iter().collect();
                assert!(
                    JoinToken::decode(&altered).is_err(),
                    "altering position {i} to {c:?} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn truncated_and_foreign_tokens_are_refused() {
        let s = sample().encode();
        assert!(JoinToken::decode(&s[..s.len() - 1]).is_err());
        let err = JoinToken::decode("hello").unwrap_err();
        assert!(err.to_string().contains("fedmesh-join-v1."), "{err}");
        let gw = BootstrapToken::generate([1; 32]).unwrap().encode();
        assert!(JoinToken::decode(&gw).is_err());
    }

    #[test]
    fn bootstrap_token_round_trips() {
        let t = BootstrapToken::generate([9u8; 32]).unwrap();
        assert_eq!(BootstrapToken::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn secrets_are_random() {
        assert_ne!(sample().secret, sample().secret);
    }
}
