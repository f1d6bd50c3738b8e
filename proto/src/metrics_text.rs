//! The two Prometheus text formats every fedmesh `/metrics` speaks (the
//! gateway's admin port and the control plane's web port): which one a
//! scrape asked for ([`negotiate`]), and the classic format converted from
//! the OpenMetrics text prometheus-client writes ([`to_classic`]).
//!
//! Prometheus asks for OpenMetrics in its `Accept` header; `curl`, older
//! servers and `promtool check metrics` read the classic
//! `text/plain; version=0.0.4`.

mod classic;

/// Which text format a scrape answer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text, as prometheus-client writes it.
    OpenMetrics,
    /// The classic Prometheus text format, version 0.0.4.
    Classic,
}

impl Format {
    /// The `Content-Type` of a scrape answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The exposition in this format, from prometheus-client's OpenMetrics
    /// text.
    pub fn render(self, openmetrics: String) -> String {
        match self {
            Format::OpenMetrics => openmetrics,
            Format::Classic => to_classic(&openmetrics),
        }
    }
}

/// The format a scrape with this `Accept` header gets: OpenMetrics when
/// it accepts `application/openmetrics-text` (q > 0) at least as much as
/// `text/plain`, the classic format otherwise, and when there is no
/// header. Media ranges and q-values as in RFC 9110 §12.5.1; a q-value
/// that does not parse counts as 1.
pub fn negotiate(accept: Option<&str>) -> Format {
    let (mut openmetrics, mut text) = (0.0_f64, 0.0_f64);
    for range in accept.unwrap_or("").split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(1.0, |(_, v)| v.trim().parse().unwrap_or(1.0));
        match media.as_str() {
            "application/openmetrics-text" => openmetrics = openmetrics.max(q),
            "text/plain" => text = text.max(q),
            _ => {}
        }
    }
    if openmetrics > 0.0 && openmetrics >= text {
        Format::OpenMetrics
    } else {
        Format::Classic
    }
}

/// Converts an OpenMetrics text exposition to the classic text format
/// (version 0.0.4). Lines that are neither a known comment nor a sample
/// are dropped.
pub fn to_classic(openmetrics: &str) -> String {
    classic::from_openmetrics(openmetrics)
}
