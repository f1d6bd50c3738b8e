//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the
//! `traceparent` and `tracestate` headers, parsed strictly and written
//! back for the next hop.
//!
//! A gateway is one hop of a trace. For each HTTP request it takes the
//! caller's context ([`HopTrace::continue_or_start`]): a valid
//! `traceparent` is continued (same trace id, the caller's span id becomes
//! this hop's parent, the sampled flag and `tracestate` kept); an absent or
//! invalid one starts a new trace, sampled by the configured ratio
//! ([`Sampler`]). [`HopTrace::write`] then puts this hop's own span id in
//! the request as it goes on, so the next hop (the peer's ingress, the
//! backend) sees this gateway as its parent. Span export
//! ([`crate::otlp`]) and access logs read the same [`HopTrace`].
//!
//! Only parsing and formatting live here: pure functions, unit-tested
//! against the specification's rules.

use std::cell::Cell;
use std::fmt;

use http::{HeaderMap, HeaderValue};
use ring::rand::{SecureRandom, SystemRandom};

/// The `traceparent` header (W3C Trace Context §3.2).
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header (§3.3).
pub const TRACESTATE: &str = "tracestate";

/// Length of a version-00 `traceparent`: `00-` 32 hex `-` 16 hex `-` 2 hex.
const TRACEPARENT_LEN: usize = 55;
/// §3.2.2.5: bit 0 of trace-flags.
const FLAG_SAMPLED: u8 = 0x01;
/// §3.3.1.1: at most 32 list-members.
const TRACESTATE_MEMBERS: usize = 32;
/// §3.3.1.5: at least 512 characters are kept; past that a proxy may drop
/// it. Longer states are dropped whole, never cut.
const TRACESTATE_MAX: usize = 512;

/// A 16-byte trace id, never all zero (§3.2.2.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id, never all zero (§3.2.2.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// Why a `traceparent` value was not taken (the hop then starts a trace).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceparentError {
    /// Not 55 characters (version 00), or shorter than that (later
    /// versions).
    #[error("traceparent is {0} characters long; version 00 has exactly 55")]
    Length(usize),
    /// The version is not two lowercase hex digits, or is `ff`.
    #[error("traceparent version is not two lowercase hex digits other than ff")]
    Version,
    /// A `-` is missing where the format puts one.
    #[error("traceparent fields are not separated by '-'")]
    Separator,
    /// The trace id is not 32 lowercase hex digits, or is all zero.
    #[error("traceparent trace-id is not 32 lowercase hex digits, or is all zero")]
    TraceId,
    /// The parent id is not 16 lowercase hex digits, or is all zero.
    #[error("traceparent parent-id is not 16 lowercase hex digits, or is all zero")]
    ParentId,
    /// The flags are not two lowercase hex digits.
    #[error("traceparent trace-flags are not two lowercase hex digits")]
    Flags,
    /// More than one `traceparent` header (§3.2: then none is valid).
    #[error("more than one traceparent header")]
    Repeated,
}

/// A parsed `traceparent`: whose span called, in which trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traceparent {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span.
    pub parent_id: SpanId,
    /// Whether the caller may have recorded its span.
    pub sampled: bool,
}

impl Traceparent {
    /// Parses a header value by §3.2, versions after 00 by §3.2.4 (their
    /// first 55 characters read as version 00, the rest ignored).
    ///
    /// # Errors
    /// [`TraceparentError`]: the first rule the value breaks.
    pub fn parse(value: &str) -> Result<Self, TraceparentError> {
        let bytes = value.as_bytes();
        if bytes.len() < TRACEPARENT_LEN {
            return Err(TraceparentError::Length(bytes.len()));
        }
        let version = hex_field::<1>(&bytes[0..2]).ok_or(TraceparentError::Version)?[0];
        if version == 0xff {
            return Err(TraceparentError::Version);
        }
        // §3.2.4: version 00 is exactly 55 long; a later version may add
        // fields after a '-'.
        let longer_ok = version > 0 && bytes.get(TRACEPARENT_LEN) == Some(&b'-');
        if bytes.len() != TRACEPARENT_LEN && !longer_ok {
            return Err(TraceparentError::Length(bytes.len()));
        }
        if [2, 35, 52].iter().any(|&i| bytes[i] != b'-') {
            return Err(TraceparentError::Separator);
        }
        let trace_id = hex_field::<16>(&bytes[3..35])
            .filter(|id| id.iter().any(|&b| b != 0))
            .ok_or(TraceparentError::TraceId)?;
        let parent_id = hex_field::<8>(&bytes[36..52])
            .filter(|id| id.iter().any(|&b| b != 0))
            .ok_or(TraceparentError::ParentId)?;
        let flags = hex_field::<1>(&bytes[53..55]).ok_or(TraceparentError::Flags)?[0];
        Ok(Self {
            trace_id: TraceId(trace_id),
            parent_id: SpanId(parent_id),
            sampled: flags & FLAG_SAMPLED != 0,
        })
    }

    /// The header value, always version 00 (§3.2.4: a hop sends the
    /// version it knows), with only the sampled flag (§3.2.2.5: other bits
    /// are set to zero).
    pub fn to_header(&self) -> String {
        let flags = if self.sampled { FLAG_SAMPLED } else { 0 };
        format!("00-{}-{}-{flags:02x}", self.trace_id, self.parent_id)
    }
}

/// `N` bytes from `2 * N` lowercase hex digits (§3.2.2: HEXDIGLC only).
fn hex_field<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The `traceparent` of `headers`, when there is exactly one.
///
/// # Errors
/// [`TraceparentError`]: why the caller's context is not taken.
pub fn incoming(headers: &HeaderMap) -> Result<Option<Traceparent>, TraceparentError> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(TraceparentError::Repeated);
    }
    let text = first.to_str().map_err(|_| TraceparentError::Version)?;
    Traceparent::parse(text.trim()).map(Some)
}

/// The `tracestate` of `headers`, its headers joined (§3.3.1.1: several
/// are one list), or `None` when absent or malformed (§3.3.1.5: a hop may
/// drop a state it cannot keep whole).
pub fn tracestate(headers: &HeaderMap) -> Option<String> {
    let mut joined = String::new();
    for value in headers.get_all(TRACESTATE) {
        let text = value.to_str().ok()?;
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(text);
    }
    let members: Vec<&str> = joined
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if members.is_empty() || members.len() > TRACESTATE_MEMBERS {
        return None;
    }
    let kept = members.join(",");
    (kept.len() <= TRACESTATE_MAX && members.iter().all(|m| valid_member(m))).then_some(kept)
}

/// `key=value` by §3.3.1.3: a lowercase key (a tenant `@` allowed), a
/// value of printable ASCII without `,` and `=` that does not end in a
/// space.
fn valid_member(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    let key_ok = !key.is_empty()
        && key.len() <= 256
        && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-*/@".contains(c));
    let value_ok = !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=');
    key_ok && value_ok
}

/// How the traces a hop starts are sampled: a share of trace ids, decided
/// from the id itself so that every hop that samples by ratio agrees.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    /// Trace ids whose low 63 bits fall under this are sampled.
    threshold: u64,
}

impl Sampler {
    /// Samples `ratio` (0.0 to 1.0, clamped) of the traces started.
    pub fn new(ratio: f64) -> Self {
        let ratio = ratio.clamp(0.0, 1.0);
        // 2^63 fits an f64 exactly; the cast saturates at u64::MAX.
        let threshold = (ratio * (1u64 << 63) as f64) as u64;
        Self { threshold }
    }

    /// Whether a trace started with `id` is sampled.
    pub fn samples(&self, id: &TraceId) -> bool {
        let mut low = [0u8; 8];
        low.copy_from_slice(&id.0[8..]);
        (u64::from_be_bytes(low) >> 1) < self.threshold
    }
}

/// This gateway's hop of one request's trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopTrace {
    /// The trace.
    pub trace_id: TraceId,
    /// This hop's span: the parent the next hop sees.
    pub span_id: SpanId,
    /// The caller's span, when the trace was continued.
    pub parent_id: Option<SpanId>,
    /// Whether spans of this trace are recorded.
    pub sampled: bool,
    /// The caller's `tracestate`, passed on unchanged.
    pub tracestate: Option<String>,
}

impl HopTrace {
    /// Continues the caller's trace when `headers` carry a valid
    /// `traceparent`, or starts one sampled by `sampler`.
    pub fn continue_or_start(headers: &HeaderMap, sampler: Sampler) -> Self {
        match incoming(headers) {
            Ok(Some(parent)) => Self {
                trace_id: parent.trace_id,
                span_id: new_span_id(),
                parent_id: Some(parent.parent_id),
                sampled: parent.sampled,
                tracestate: tracestate(headers),
            },
            // §3.3: without a valid traceparent, tracestate is not read.
            Ok(None) | Err(_) => {
                let trace_id = new_trace_id();
                Self {
                    trace_id,
                    span_id: new_span_id(),
                    parent_id: None,
                    sampled: sampler.samples(&trace_id),
                    tracestate: None,
                }
            }
        }
    }

    /// Sets the request's `traceparent` to this hop (and its `tracestate`
    /// to the caller's, or none), replacing what the caller sent.
    pub fn write(&self, headers: &mut HeaderMap) {
        let parent = Traceparent {
            trace_id: self.trace_id,
            parent_id: self.span_id,
            sampled: self.sampled,
        };
        headers.remove(TRACESTATE);
        if let Ok(value) = HeaderValue::from_str(&parent.to_header()) {
            headers.insert(TRACEPARENT, value);
        }
        if let Some(value) = self
            .tracestate
            .as_deref()
            .and_then(|s| HeaderValue::from_str(s).ok())
        {
            headers.insert(TRACESTATE, value);
        }
    }
}

thread_local! {
    /// Per-thread id generator state, seeded once from the OS.
    static IDS: Cell<u64> = Cell::new(seed());
}

/// A seed from the OS's random source (the clock if that fails), so that
/// threads and gateways draw different ids.
fn seed() -> u64 {
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64).to_le_bytes();
    }
    u64::from_le_bytes(bytes)
}

/// The next 64 random bits (splitmix64). Ids need to be unique and evenly
/// spread (W3C Trace Context Level 2 §3.2.2.3: random), not secret, and a
/// syscall per id would cost more than the rest of a request's trace work.
fn next_random() -> u64 {
    IDS.with(|state| {
        let mut z = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// `N` random bytes, not all zero (§3.2.2.3: an all-zero id is invalid).
fn random_id<const N: usize>() -> [u8; N] {
    let mut id = [0u8; N];
    for chunk in id.chunks_mut(8) {
        let bits = next_random().to_le_bytes();
        chunk.copy_from_slice(&bits[..chunk.len()]);
    }
    if id.iter().all(|&b| b == 0) {
        id[N - 1] = 1;
    }
    id
}

fn new_trace_id() -> TraceId {
    TraceId(random_id())
}

fn new_span_id() -> SpanId {
    SpanId(random_id())
}

#[cfg(test)]
mod tests;
