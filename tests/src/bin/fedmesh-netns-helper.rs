//! `fedmesh-netns-helper`: what the namespace tests run inside a cluster's
//! network namespace (`ip netns exec NS fedmesh-netns-helper …`), built on
//! the harness's own pieces so the checks match the loopback tests.
//!
//! | subcommand | does | prints |
//! |---|---|---|
//! | `serve NAME ADDR` | a [`Backend`] named NAME on ADDR, until killed | `serving NAME on ADDR` |
//! | `ask ADDR COUNT PAUSE_MS` | COUNT connections to ADDR ([`ask_backend`]), PAUSE_MS apart | one line each: `ok NAME` or `err WHY`, then `done` |
//! | `dns SERVER NAME TYPE` | one DNS question ([`dns_query`]) | `{"code":…,"a":[…],"soa":…}` |
//! | `get ADDR PATH` | an HTTP/1.1 GET ([`http_get`]) | the status, a newline, the body |
//! | `relay LISTEN UPSTREAM DELAY_MS` | a delaying [`Relay`], until killed | `relay listening on ADDR`, then `relay accepted N` as N grows |
//! | `delay QUEUE DELAY_MS` | holds the packets of NFQUEUE QUEUE ([`delay::run`]), until killed | `delaying` once the queue is bound |
//!
//! Exit status 2 with a usage line on bad arguments.

use std::net::SocketAddr;
use std::time::Duration;

use fedmesh_tests::netns::delay;
use fedmesh_tests::relay::Relay;
use fedmesh_tests::{Backend, ask_backend, dns_query, http_get};

const USAGE: &str = "usage: fedmesh-netns-helper serve NAME ADDR | ask ADDR COUNT PAUSE_MS | dns SERVER NAME TYPE | get ADDR PATH | relay LISTEN UPSTREAM DELAY_MS | delay QUEUE DELAY_MS";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["serve", name, addr] => addr_arg(addr).map(|a| serve(name, a)),
        ["ask", addr, count, pause] => addr_arg(addr).and_then(|a| {
            let count = number(count)?;
            let pause = number(pause)?;
            ask(a, count, Duration::from_millis(pause));
            Ok(())
        }),
        ["dns", server, name, rtype] => addr_arg(server).map(|s| dns(s, name, rtype)),
        ["get", addr, path] => {
            let (status, body) = http_get(addr, path);
            println!("{status}\n{body}");
            Ok(())
        }
        ["relay", listen, upstream, delay] => addr_arg(listen).and_then(|l| {
            let u = addr_arg(upstream)?;
            relay(l, u, Duration::from_millis(number(delay)?))
        }),
        ["delay", queue, delay] => number(queue).and_then(|q| {
            let q = u16::try_from(q).map_err(|_| format!("queue {q} is not a 16-bit number"))?;
            let delay = Duration::from_millis(number(delay)?);
            delay::run(q, delay, || println!("delaying"))
                .map_err(|e| format!("cannot delay NFQUEUE {q}: {e}"))
        }),
        _ => Err(USAGE.to_string()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}\n{USAGE}");
        std::process::exit(2);
    }
}

fn addr_arg(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP:PORT address"))
}

fn number(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

fn serve(name: &str, addr: SocketAddr) {
    let _backend = Backend::start(addr, name);
    println!("serving {name} on {addr}");
    // The backend's threads serve; this one only keeps the process alive
    // until the harness kills it.
    loop {
        std::thread::park();
    }
}

fn ask(addr: SocketAddr, count: u64, pause: Duration) {
    for i in 0..count {
        if i > 0 {
            std::thread::sleep(pause);
        }
        match ask_backend(addr) {
            Ok(name) => println!("ok {name}"),
            Err(why) => println!("err {why}"),
        }
    }
    println!("done");
}

fn dns(server: SocketAddr, name: &str, rtype: &str) {
    let answer = dns_query(server, name, rtype);
    let a: Vec<String> = answer.a.iter().map(ToString::to_string).collect();
    println!(
        "{}",
        serde_json::json!({ "code": answer.code, "a": a, "soa": answer.soa })
    );
}

fn relay(listen: SocketAddr, upstream: SocketAddr, delay: Duration) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    runtime.block_on(async {
        let relay = Relay::start(listen, upstream, delay)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        println!("relay listening on {}", relay.addr());
        let mut shown = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = relay.accepted();
            if now != shown {
                shown = now;
                println!("relay accepted {now}");
            }
        }
    })
}
