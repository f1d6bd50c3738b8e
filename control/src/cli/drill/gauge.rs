//! Which cluster served the drill's connections, read from the client
//! cluster's gateway: its `/metrics` counter
//! `fedmesh_gateway_egress_connections_opened_total{namespace, service,
//! cluster}` for the drained cluster, sampled every [`SAMPLE_EVERY`].
//!
//! Why the counter and not a tag in the answer: it works with any backend
//! (opaque TCP carries nothing the drill could read), and it counts
//! exactly the connections the gateway sent to that cluster. Its limits:
//! other clients of the same gateway count too, and a cluster with several
//! gateways needs the drill's traffic to go through the one it reads (the
//! VIP on this host does).
//!
//! The times derived from the samples ([`switch_times`]) are pure
//! functions with unit tests; their resolution is [`SAMPLE_EVERY`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often the counter is read: the resolution of the reported times.
pub(super) const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Largest `/metrics` answer read (a gateway with many services).
const MAX_METRICS_BYTES: u64 = 64 << 20;

/// The counter of connections opened to one cluster for one service.
pub(super) const OPENED: &str = "fedmesh_gateway_egress_connections_opened_total";

/// One reading: milliseconds since the drill started, and the counter.
pub(super) type Sample = (u64, f64);

/// The labels of one series, as they appear in the text format.
#[derive(Debug, Clone)]
pub(super) struct Series {
    /// Namespace of the service.
    pub namespace: String,
    /// Name of the service.
    pub service: String,
    /// The drained cluster.
    pub cluster: String,
}

/// Reads the counter of `series` at the gateway admin port `addr`.
///
/// # Errors
/// When the gateway does not answer 200, or has no such series (then it is
/// not this cluster's gateway, or it does not import the service).
pub(super) async fn read(addr: SocketAddr, series: &Series) -> anyhow::Result<f64> {
    let text = tokio::time::timeout(Duration::from_secs(3), get_metrics(addr))
        .await
        .map_err(|_| anyhow!("the gateway at {addr} did not answer GET /metrics within 3s"))??;
    counter(&text, OPENED, series).ok_or_else(|| {
        anyhow!(
            "the gateway at {addr} has no {OPENED} series for {}/{} cluster {}; give this cluster's gateway admin address (gateway.adminListen) with --gateway-admin",
            series.namespace,
            series.service,
            series.cluster
        )
    })
}

async fn get_metrics(addr: SocketAddr) -> anyhow::Result<String> {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot reach the gateway admin port {addr}"))?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    conn.take(MAX_METRICS_BYTES).read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("the gateway at {addr} sent no HTTP answer to GET /metrics"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(anyhow!(
            "the gateway at {addr} answered GET /metrics with {status:?}, not 200"
        ));
    }
    Ok(body.to_string())
}

/// The value of counter `name` with exactly the labels of `series`, in
/// the Prometheus text format (classic or OpenMetrics).
pub(super) fn counter(text: &str, name: &str, series: &Series) -> Option<f64> {
    let want = [
        ("namespace", series.namespace.as_str()),
        ("service", series.service.as_str()),
        ("cluster", series.cluster.as_str()),
    ];
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| rest.split_once('}'))
        .find(|(labels, _)| {
            let got = parse_labels(labels);
            got.len() == want.len() && want.iter().all(|w| got.contains(w))
        })
        .and_then(|(_, value)| value.split_whitespace().next()?.parse().ok())
}

/// `a="x",b="y"` as pairs; values in these series hold no quotes.
fn parse_labels(labels: &str) -> Vec<(&str, &str)> {
    labels
        .split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim(), v.trim().strip_prefix('"')?.strip_suffix('"')?))
        })
        .collect()
}

/// The switch-over (drain → the last sample at which the cluster still got
/// a new connection, or 0 when none came after the drain) and the return
/// (undrain → the first sample at which it got one again; `None` when it
/// got none), in ms. A sample's time is an upper bound of when the
/// connections it counts were opened.
pub(super) fn switch_times(
    samples: &[Sample],
    drained_ms: u64,
    undrained_ms: u64,
) -> (u64, Option<u64>) {
    let increases: Vec<u64> = samples
        .windows(2)
        .filter(|w| w[1].1 > w[0].1)
        .map(|w| w[1].0)
        .collect();
    let switchover = increases
        .iter()
        .filter(|t| **t > drained_ms && **t <= undrained_ms)
        .max()
        .map_or(0, |t| t - drained_ms);
    let back = increases
        .iter()
        .find(|t| **t > undrained_ms)
        .map(|t| t - undrained_ms);
    (switchover, back)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series {
        Series {
            namespace: "demo".into(),
            service: "hello".into(),
            cluster: "east".into(),
        }
    }

    #[test]
    fn the_counter_of_exactly_this_series_is_read() {
        let text = "\
# TYPE fedmesh_gateway_egress_connections_opened_total counter
fedmesh_gateway_egress_connections_opened_total{namespace=\"demo\",service=\"hello\",cluster=\"west\"} 9
fedmesh_gateway_egress_connections_opened_total{namespace=\"demo\",service=\"hello\",cluster=\"east\"} 41
fedmesh_gateway_egress_connections_opened_total{namespace=\"demo\",service=\"hello2\",cluster=\"east\"} 7
";
        assert_eq!(counter(text, OPENED, &series()), Some(41.0));
        let mut other = series();
        other.cluster = "eu".into();
        assert_eq!(counter(text, OPENED, &other), None);
        let open_metrics = "fedmesh_gateway_egress_connections_opened_total{cluster=\"east\",namespace=\"demo\",service=\"hello\"} 3 1700000000\n";
        assert_eq!(counter(open_metrics, OPENED, &series()), Some(3.0));
    }

    #[test]
    fn switch_over_is_the_last_increase_after_the_drain_and_return_the_first_after_undrain() {
        let samples = [
            (0, 0.0),
            (100, 5.0),
            (1000, 40.0),
            (1100, 42.0), // drained at 1050: one still in flight
            (1200, 43.0), // the last one
            (1300, 43.0),
            (2000, 43.0),
            (2100, 43.0), // undrained at 2050
            (2200, 43.0),
            (2300, 45.0), // back
        ];
        assert_eq!(switch_times(&samples, 1050, 2050), (150, Some(250)));
    }

    #[test]
    fn no_connection_after_the_drain_is_a_zero_switch_over_and_none_back_is_none() {
        let samples = [(0, 0.0), (100, 5.0), (200, 5.0), (300, 5.0)];
        assert_eq!(switch_times(&samples, 150, 250), (0, None));
    }
}
