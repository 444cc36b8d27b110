//! `pyetcd-bench`: etcd's benchmark workloads (put, range, txn-put, stm, lease-keepalive, watch,
//! watch-latency) driven by native gRPC clients (unary calls straight over h2, streams over tonic), so the
//! generator is never what limits the server.
//!
//! `pyetcd-bench <workload> --endpoints a:2379,b:2379 [--conns C] [--clients N] [--total T] ...` prints one
//! JSON object: requests, errors, seconds, requests/s, latency percentiles and histogram (ms), and the
//! generator's own CPU seconds. `N` clients share `C` HTTP/2 connections, spread over the endpoints, as
//! etcd's `benchmark` tool spreads them.
//!
//! `pyetcd-bench null-server` is the other side: a KV service that answers at once and stores nothing
//! ([`null_server`]), the ceiling a client such as `etcdctl check perf` can reach on this machine.
mod null_server;
mod stats;
mod unary;

/// The generator shares the machine with the server it drives: a leaner allocator leaves it more CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod workloads;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use tonic::transport::{Channel, Endpoint};

/// The command line: `--name value` pairs and bare `--flag`s after the workload name.
pub struct Args {
    pub workload: String,
    values: HashMap<String, String>,
}

impl Args {
    fn parse(argv: &[String]) -> Result<Args, String> {
        let workload = argv.first().cloned().ok_or_else(usage)?;
        let mut values = HashMap::new();
        let mut i = 1;
        while i < argv.len() {
            let a = argv[i].strip_prefix("--").ok_or_else(|| format!("unexpected argument {}", argv[i]))?;
            if let Some((k, v)) = a.split_once('=') {
                values.insert(k.to_string(), v.to_string());
            } else if i + 1 < argv.len() && !argv[i + 1].starts_with("--") {
                values.insert(a.to_string(), argv[i + 1].clone());
                i += 1;
            } else {
                values.insert(a.to_string(), "true".to_string());
            }
            i += 1;
        }
        Ok(Args { workload, values })
    }

    pub fn str(&self, k: &str, default: &str) -> String {
        self.values.get(k).cloned().unwrap_or_else(|| default.to_string())
    }

    pub fn num(&self, k: &str, default: u64) -> u64 {
        self.values.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    pub fn flag(&self, k: &str) -> bool {
        self.values.get(k).is_some_and(|v| v != "false")
    }
}

fn usage() -> String {
    "usage: pyetcd-bench put|range|txn-put|stm|lease-keepalive|watch|watch-latency --endpoints host:port[,..] \
     [--conns 1] [--clients 1] [--total 10000] [--key-size 8] [--val-size 256] [--key-space-size 1] \
     [--sequential-keys] [--consistency l|s] [--key foo] [--prefix] [--limit 0] [--watchers 100] \
     [--streams 10] [--puts 100] [--put-rate 0] [--cacert ca.pem (https endpoints)]\n       pyetcd-bench null-server [--listen 127.0.0.1:0]"
        .to_string()
}

/// The endpoint of each of the `--conns` connections: round-robin over `--endpoints`.
pub fn endpoints(args: &Args) -> Vec<String> {
    let all = args.str("endpoints", "127.0.0.1:2379");
    let all: Vec<&str> = all.split(',').collect();
    (0..args.num("conns", 1).max(1) as usize).map(|i| all[i % all.len()].to_string()).collect()
}

/// `C` tonic channels over the endpoints, round-robin.
pub async fn connect(args: &Args) -> Result<Vec<Channel>, String> {
    let mut out = Vec::new();
    for ep in endpoints(args) {
        let url = if ep.contains("://") { ep.clone() } else { format!("http://{ep}") };
        let ch = Endpoint::from_shared(url)
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("connect {ep}: {e}"))?;
        out.push(ch);
    }
    Ok(out)
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match Args::parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let threads = args.num("threads", 2).max(1) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    if args.workload == "null-server" {
        if let Err(e) = rt.block_on(null_server::serve(&args)) {
            eprintln!("pyetcd-bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let cpu0 = stats::cpu_seconds();
    match rt.block_on(workloads::run(&args)) {
        Ok(mut report) => {
            report["workload"] = json!(args.workload);
            report["generator_cpu_seconds"] = json!(stats::cpu_seconds() - cpu0);
            println!("{report}");
        }
        Err(e) => {
            eprintln!("pyetcd-bench: {e}");
            std::process::exit(1);
        }
    }
}
