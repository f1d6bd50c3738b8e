//! The join and gateway bootstrap token codec (`fedmesh_proto::token`):
//! an operator pastes a token, a gateway reads one from a file.
//!
//! Rule checked: whatever decodes encodes back to a token that decodes to
//! the same value (the codec loses nothing it accepted).

use fedmesh_proto::token::{BootstrapToken, JoinToken};

/// Decodes `data` as both kinds of token.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = JoinToken::decode(text) {
        let again = JoinToken::decode(&token.encode());
        assert_eq!(again.as_ref().ok(), Some(&token), "join token round trip");
    }
    if let Ok(token) = BootstrapToken::decode(text) {
        let again = BootstrapToken::decode(&token.encode());
        assert_eq!(
            again.as_ref().ok(),
            Some(&token),
            "bootstrap token round trip"
        );
    }
}
