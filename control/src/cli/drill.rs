//! `fedctl drill`: a failover drill on the real federation (DESIGN.md,
//! Operations). Run on a client cluster, it sends new connections through
//! a service's VIP, drains one cluster through that cluster's admin API,
//! undrains it, and reports failed connections, the switch-over time and
//! the return time; it exits 0 only when no connection failed.
//!
//! Flow: [`prepare`] asks this cluster's admin API for the service (its VIP
//! and which clusters serve it) and checks the drained cluster's admin API
//! really is that cluster and is not drained already; [`run`] then starts
//! the traffic (`traffic.rs`) and the sampling of the gateway counter
//! (`gauge.rs`), drains at one third of the duration and undrains at two
//! thirds. The cluster is undrained on every way out after the drain
//! (error, Ctrl-C), so a drill never leaves a cluster out of rotation.

mod gauge;
mod traffic;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use fedmesh_proto::config::{AdminListen, parse_duration};
use fedmesh_proto::v1::{self, admin_client::AdminClient};
use tokio::time::Instant;
use tonic::transport::Channel;

use super::Output;
use super::client;
use gauge::{SAMPLE_EVERY, Sample, Series};
use traffic::Tally;

/// `fedctl drill …`
#[derive(Debug, Clone, clap::Args)]
pub struct DrillArgs {
    /// The cluster to drain (default: the oldest exporter of the service).
    #[arg(long)]
    pub cluster: Option<String>,
    /// The service, NS/NAME (default: the only service served by two
    /// clusters or more).
    #[arg(long, value_name = "NS/NAME")]
    pub service: Option<String>,
    /// How long traffic runs; drained at a third, undrained at two thirds.
    #[arg(long, default_value = "10s", value_parser = parse_drill_duration)]
    pub duration: Duration,
    /// New connections per second.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub rate: u32,
    /// The drained cluster's admin API (its control.adminListen). Needed
    /// unless it is this cluster: admin APIs listen on their own host only.
    #[arg(long, value_name = "ADDR")]
    pub cluster_admin: Option<String>,
    /// This cluster's gateway admin port (gateway.adminListen), whose
    /// per-cluster counters tell which cluster served; default from
    /// --config.
    #[arg(long, value_name = "ADDR")]
    pub gateway_admin: Option<SocketAddr>,
}

fn parse_drill_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(3) {
        return Err(
            "the drill needs at least 3s (a third each before, during and after the drain)".into(),
        );
    }
    Ok(d)
}

/// What the drill acts on, checked before anything is drained.
struct Plan {
    cluster: String,
    series: Series,
    target: SocketAddr,
    drained: AdminClient<Channel>,
    gateway: SocketAddr,
}

/// What the drill measured.
struct Report {
    sent: u64,
    failed: u64,
    switchover_ms: u64,
    return_ms: Option<u64>,
    errors: Vec<String>,
}

/// Runs the drill against this cluster's admin API `here`.
///
/// # Errors
/// When the service, the cluster, its admin API or the gateway cannot be
/// found or used; nothing is drained then.
pub(super) async fn run(
    here: &mut AdminClient<Channel>,
    args: DrillArgs,
    default_gateway: Option<SocketAddr>,
    out: Output,
) -> anyhow::Result<ExitCode> {
    let mut plan = prepare(here, &args, default_gateway).await?;
    eprintln!(
        "drill: {} new connections/s to {}/{} at {} for {}s; draining {} at {}s, undraining at {}s",
        args.rate,
        plan.series.namespace,
        plan.series.service,
        plan.target,
        args.duration.as_secs_f64(),
        plan.cluster,
        (args.duration / 3).as_secs_f64(),
        (args.duration * 2 / 3).as_secs_f64(),
    );
    let report = execute(&mut plan, &args).await?;
    print(&report, &plan, out);
    Ok(if report.failed == 0 && report.return_ms.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Finds the service, its VIP, the cluster to drain and its admin API, and
/// this cluster's gateway counters.
async fn prepare(
    here: &mut AdminClient<Channel>,
    args: &DrillArgs,
    default_gateway: Option<SocketAddr>,
) -> anyhow::Result<Plan> {
    let me = here
        .get_version(v1::GetVersionRequest {})
        .await
        .map_err(|e| anyhow!("this cluster's admin API: {}", e.message()))?
        .into_inner()
        .cluster;
    let services = here
        .list_services(v1::ListServicesRequest {})
        .await
        .map_err(|e| anyhow!("listing services: {}", e.message()))?
        .into_inner()
        .services;
    let service = pick_service(&services, args.service.as_deref())?;
    let cluster = pick_cluster(service, args.cluster.as_deref())?;
    let port = service
        .ports
        .first()
        .ok_or_else(|| anyhow!("{}/{} has no port", service.namespace, service.name))?;
    let vip: std::net::Ipv4Addr = service.vip.parse().map_err(|_| {
        anyhow!(
            "{}/{} has no VIP here yet (gateway.vipRange full?)",
            service.namespace,
            service.name
        )
    })?;
    let drained = drained_admin(here, &me, &cluster, args.cluster_admin.as_deref()).await?;
    let gateway = args.gateway_admin.or(default_gateway).ok_or_else(|| {
        anyhow!("--gateway-admin ADDR is needed: this cluster's gateway admin port (gateway.adminListen), whose per-cluster counters tell which cluster served; or give --config")
    })?;
    let series = Series {
        namespace: service.namespace.clone(),
        service: service.name.clone(),
        cluster: cluster.clone(),
    };
    gauge::read(gateway, &series).await?;
    Ok(Plan {
        cluster,
        series,
        target: SocketAddr::from((vip, u16::try_from(port.port).unwrap_or(0))),
        drained,
        gateway,
    })
}

fn pick_service<'a>(
    services: &'a [v1::GlobalServiceStatus],
    wanted: Option<&str>,
) -> anyhow::Result<&'a v1::GlobalServiceStatus> {
    let name = |s: &v1::GlobalServiceStatus| format!("{}/{}", s.namespace, s.name);
    if let Some(wanted) = wanted {
        return services.iter().find(|s| name(s) == wanted).ok_or_else(|| {
            let known: Vec<String> = services.iter().map(name).collect();
            anyhow!(
                "--service {wanted} is not a global service here (known: {}); give NS/NAME",
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            )
        });
    }
    let mut failover = services.iter().filter(|s| s.clusters.len() >= 2);
    match (failover.next(), failover.next()) {
        (Some(s), None) => Ok(s),
        (None, _) => bail!(
            "no service here is served by two clusters or more: a drill needs somewhere to fail over to"
        ),
        (Some(_), Some(_)) => {
            bail!("several services could be drilled: choose one with --service NS/NAME")
        }
    }
}

fn pick_cluster(service: &v1::GlobalServiceStatus, wanted: Option<&str>) -> anyhow::Result<String> {
    let names: Vec<&str> = service.clusters.iter().map(|c| c.name.as_str()).collect();
    let id = format!("{}/{}", service.namespace, service.name);
    let cluster = match wanted {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => bail!(
            "{id} is not served by {c} (served by: {})",
            names.join(", ")
        ),
        None => names
            .first()
            .map(|c| (*c).to_string())
            .ok_or_else(|| anyhow!("{id} is served by no cluster"))?,
    };
    if names.len() < 2 {
        bail!(
            "{id} is served by {cluster} only: draining it would fail every connection; export it in another cluster first"
        );
    }
    Ok(cluster)
}

/// The admin API of `cluster`: this one's when it is this cluster, else
/// `--cluster-admin`, checked to be that cluster and not drained yet.
async fn drained_admin(
    here: &AdminClient<Channel>,
    me: &str,
    cluster: &str,
    flag: Option<&str>,
) -> anyhow::Result<AdminClient<Channel>> {
    let mut admin = match flag {
        Some(text) => {
            let addr =
                AdminListen::parse(text).map_err(|e| anyhow!("--cluster-admin {text:?}: {e}"))?;
            client::connect(&addr)
                .await
                .with_context(|| format!("while reaching {cluster}'s admin API"))?
        }
        None if cluster == me => here.clone(),
        None => bail!(
            "--cluster-admin ADDR is needed: {cluster}'s admin API (its control.adminListen) listens on {cluster}'s host only, so this cluster cannot know it"
        ),
    };
    let name = admin
        .get_version(v1::GetVersionRequest {})
        .await
        .map_err(|e| anyhow!("{cluster}'s admin API: {}", e.message()))?
        .into_inner()
        .cluster;
    if name != cluster {
        bail!("--cluster-admin answers as cluster {name}, not {cluster}");
    }
    let drained = admin
        .list_peers(v1::ListPeersRequest {})
        .await
        .map_err(|e| anyhow!("{cluster}'s admin API: {}", e.message()))?
        .into_inner()
        .self_draining;
    if drained {
        bail!(
            "{cluster} is drained already; `fedctl undrain {cluster}` first, or drill another cluster"
        );
    }
    Ok(admin)
}

/// Sends the traffic, drains and undrains, and measures.
async fn execute(plan: &mut Plan, args: &DrillArgs) -> anyhow::Result<Report> {
    let start = Instant::now();
    let end = start + args.duration;
    let tally = Arc::new(Tally::default());
    let traffic = tokio::spawn(traffic::send(plan.target, args.rate, end, tally.clone()));
    let sampler = tokio::spawn(sample(
        plan.gateway,
        plan.series.clone(),
        start,
        end,
        tally.clone(),
    ));
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::pin!(interrupted);
    tokio::select! {
        () = tokio::time::sleep_until(start + args.duration / 3) => {}
        () = &mut interrupted => bail!("interrupted before the drain; nothing was drained"),
    }
    let drained_ms = ms_since(start);
    set_draining(plan, true).await?;
    eprintln!(
        "drill: {} drained at {:.1}s",
        plan.cluster,
        drained_ms as f64 / 1000.0
    );
    let stopped = tokio::select! {
        () = tokio::time::sleep_until(start + args.duration * 2 / 3) => false,
        () = &mut interrupted => true,
    };
    let undrained_ms = ms_since(start);
    set_draining(plan, false).await?;
    if stopped {
        bail!("interrupted; {} was undrained", plan.cluster);
    }
    eprintln!(
        "drill: {} undrained at {:.1}s",
        plan.cluster,
        undrained_ms as f64 / 1000.0
    );
    let _ = traffic.await;
    let samples = sampler.await.context("the gauge task failed")?;
    let (switchover_ms, return_ms) = gauge::switch_times(&samples, drained_ms, undrained_ms);
    Ok(Report {
        sent: tally.sent(),
        failed: tally.failed(),
        switchover_ms,
        return_ms,
        errors: tally.errors(),
    })
}

async fn set_draining(plan: &mut Plan, draining: bool) -> anyhow::Result<()> {
    plan.drained
        .set_draining(v1::SetDrainingRequest {
            draining,
            cluster: plan.cluster.clone(),
        })
        .await
        .map_err(|e| {
            let verb = if draining { "drain" } else { "undrain" };
            anyhow!(
                "cannot {verb} {}: {}; check it with `fedctl peers` there",
                plan.cluster,
                e.message()
            )
        })?;
    Ok(())
}

/// Reads the gateway counter every [`SAMPLE_EVERY`] until a while after
/// `end` (the last connections land), printing progress every second.
async fn sample(
    gateway: SocketAddr,
    series: Series,
    start: Instant,
    end: Instant,
    tally: Arc<Tally>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    let mut next_progress = start + Duration::from_secs(1);
    let stop = end + Duration::from_secs(1);
    // Bounded by `stop`: one reading per tick.
    while Instant::now() < stop {
        tick.tick().await;
        if let Ok(value) = gauge::read(gateway, &series).await {
            samples.push((ms_since(start), value));
        }
        if Instant::now() >= next_progress {
            next_progress += Duration::from_secs(1);
            let to_cluster =
                samples.last().map_or(0.0, |s| s.1) - samples.first().map_or(0.0, |s| s.1);
            eprintln!(
                "drill {:>4.1}s: sent {}, failed {}, to {} {}",
                start.elapsed().as_secs_f64(),
                tally.sent(),
                tally.failed(),
                series.cluster,
                to_cluster
            );
        }
    }
    samples
}

fn ms_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn print(r: &Report, plan: &Plan, out: Output) {
    let service = format!("{}/{}", plan.series.namespace, plan.series.service);
    match out {
        Output::Json => super::output::print_json(&serde_json::json!({
            "cluster": plan.cluster,
            "service": service,
            "sent": r.sent,
            "failed": r.failed,
            "switchoverMs": r.switchover_ms,
            "returnMs": r.return_ms,
            "resolutionMs": SAMPLE_EVERY.as_millis() as u64,
            "errors": r.errors,
        })),
        Output::Table => {
            println!("cluster     {}", plan.cluster);
            println!("service     {service}");
            println!("sent        {}", r.sent);
            println!("failed      {}", r.failed);
            println!(
                "switch-over {} ms (drain → last new connection to {})",
                r.switchover_ms, plan.cluster
            );
            match r.return_ms {
                Some(ms) => println!(
                    "return      {ms} ms (undrain → first new connection to {})",
                    plan.cluster
                ),
                None => println!(
                    "return      none: {} got no new connection after the undrain",
                    plan.cluster
                ),
            }
            for e in &r.errors {
                println!("error       {e}");
            }
        }
    }
    if r.failed > 0 {
        eprintln!(
            "drill failed: {} of {} connections failed",
            r.failed, r.sent
        );
    } else if r.return_ms.is_none() {
        eprintln!(
            "drill failed: {} did not get traffic back after the undrain",
            plan.cluster
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, clusters: &[&str]) -> v1::GlobalServiceStatus {
        v1::GlobalServiceStatus {
            namespace: "demo".into(),
            name: name.into(),
            clusters: clusters
                .iter()
                .map(|c| v1::ClusterStatus {
                    name: (*c).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_only_service_with_failover_is_chosen_and_a_wrong_name_is_listed() {
        let services = [
            service("solo", &["east"]),
            service("hello", &["east", "west"]),
        ];
        assert_eq!(pick_service(&services, None).unwrap().name, "hello");
        let e = pick_service(&services, Some("demo/nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("demo/solo, demo/hello"), "{e}");
        let two = [
            service("a", &["east", "west"]),
            service("b", &["east", "west"]),
        ];
        assert!(
            pick_service(&two, None)
                .unwrap_err()
                .to_string()
                .contains("--service")
        );
    }

    #[test]
    fn the_drained_cluster_must_serve_and_not_be_the_only_one() {
        let hello = service("hello", &["east", "west"]);
        assert_eq!(pick_cluster(&hello, None).unwrap(), "east");
        assert_eq!(pick_cluster(&hello, Some("west")).unwrap(), "west");
        let e = pick_cluster(&hello, Some("eu")).unwrap_err().to_string();
        assert!(e.contains("not served by eu"), "{e}");
        let solo = service("solo", &["east"]);
        let e = pick_cluster(&solo, None).unwrap_err().to_string();
        assert!(e.contains("only"), "{e}");
    }

    #[test]
    fn a_drill_shorter_than_three_seconds_is_refused() {
        assert!(parse_drill_duration("2s").is_err());
        assert_eq!(parse_drill_duration("10s"), Ok(Duration::from_secs(10)));
    }
}
