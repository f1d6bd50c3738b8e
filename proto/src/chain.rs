//! How the binaries print an error with its causes: `a: b: c`, each cause
//! once. Many messages already quote their cause (`cannot open {path}:
//! {source}`, which reads well alone, in a log field or an RPC status) and
//! also keep it as `#[source]` (so callers can match on it); printing the
//! chain naively would repeat that text.

use std::error::Error;

/// `error` and each cause not already quoted by the text before it, joined
/// by `: `.
pub fn chain_text(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    // Bounded: a chain is finite, and 64 causes is far beyond any real one.
    for _ in 0..64 {
        let Some(c) = cause else { break };
        let part = c.to_string();
        if !part.is_empty() && !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open state store x: {source}; stop the other one")]
    struct Quoting {
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("while opening the state store")]
    struct Context(#[source] Quoting);

    #[test]
    fn a_quoted_cause_is_printed_once_and_an_unquoted_one_is_added() {
        let e = Context(Quoting {
            source: std::io::Error::other("database already open"),
        });
        assert_eq!(
            chain_text(&e),
            "while opening the state store: cannot open state store x: database already open; stop the other one"
        );
    }
}
