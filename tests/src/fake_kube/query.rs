//! Query-string parsing for the fake API server: `labelSelector`
//! equality terms and percent-decoding (RFC 3986 §2.1).

/// `k=v,k2=v2` as pairs; terms without `=` are ignored.
pub(super) fn parse_selector(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.trim_end_matches('=').to_string(), v.to_string()))
        .collect()
}

/// Percent-decodes a query value (`+` is a space, as in forms).
pub(super) fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
