//! The workloads. Each runs `--clients` tasks over the connections until `--total` requests were issued,
//! timing every request, and reports throughput and latency.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use etcd_core::pb::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_core::pb::etcdserverpb::kv_client::KvClient;
use etcd_core::pb::etcdserverpb::lease_client::LeaseClient;
use etcd_core::pb::etcdserverpb::request_op::Request as Op;
use etcd_core::pb::etcdserverpb::watch_client::WatchClient;
use etcd_core::pb::etcdserverpb::watch_request::RequestUnion;
use etcd_core::pb::etcdserverpb::{
    Compare, LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
};
use etcd_core::v3rpc::prefix_end;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::stats::Latencies;
use crate::{connect, unary, Args};

/// A small, fast PRNG (xorshift64*): key choice only, no need for more.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The key for request `i`: sequential, or random in `--key-space-size`, padded to `--key-size` bytes.
fn key_for(args: &Args, i: u64, rng: &mut Rng) -> Vec<u8> {
    let space = args.num("key-space-size", 1).max(1);
    let n = if args.flag("sequential-keys") { i % space } else { rng.next() % space };
    let size = args.num("key-size", 8) as usize;
    format!("{}{n:0size$}", args.str("key-prefix", "")).into_bytes()
}

/// Runs `clients` tasks that each loop `op` until `total` requests were issued.
async fn closed_loop<C, F, Fut>(args: &Args, chans: &[C], op: F) -> Value
where
    C: Clone + Send + 'static,
    F: Fn(C, u64, Rng) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let total = args.num("total", 10_000);
    let clients = args.num("clients", 1).max(1);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let ch = chans[c as usize % chans.len()].clone();
        let (next, errors, op) = (next.clone(), errors.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (c + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let t = Instant::now();
                match op(ch.clone(), i, Rng(seed | 1)).await {
                    Ok(()) => lat.record(t.elapsed()),
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    report(tasks, start, |_| errors.load(Ordering::Relaxed)).await
}

/// Merges the tasks' latencies into the report: requests done, errors (`errors(done)`), rate, latency.
async fn report(tasks: Vec<tokio::task::JoinHandle<Latencies>>, start: Instant, errors: impl Fn(u64) -> u64) -> Value {
    let mut all = Latencies::default();
    for t in tasks {
        if let Ok(l) = t.await {
            all.merge(l);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = all.len() as u64;
    json!({"requests": ok, "errors": errors(ok), "seconds": secs,
           "rps": ok as f64 / secs, "latency_ms": all.summary()})
}

const PUT: &str = "/etcdserverpb.KV/Put";
const RANGE: &str = "/etcdserverpb.KV/Range";
const TXN: &str = "/etcdserverpb.KV/Txn";

pub async fn run(args: &Args) -> Result<Value, String> {
    if matches!(args.workload.as_str(), "lease-keepalive" | "watch" | "watch-latency") {
        return streaming(args).await;
    }
    let chans = unary::connect(args).await?;
    let value = Arc::new(vec![b'v'; args.num("val-size", 256) as usize]);
    let args = Arc::new(args.clone_values());
    match args.workload.as_str() {
        "put" => {
            let a = args.clone();
            Ok(closed_loop(&args, &chans, move |ch, i, mut rng| {
                let (key, value) = (key_for(&a, i, &mut rng), value.to_vec());
                async move {
                    ch.call::<_, PutResponse>(PUT, &PutRequest { key, value, ..Default::default() }).await.map(|_| ())
                }
            })
            .await)
        }
        "range" => {
            let key = args.str("key", "foo").into_bytes();
            let range_end = if args.flag("prefix") { prefix_end(&key) } else { Vec::new() };
            let serializable = args.str("consistency", "l") == "s";
            let limit = args.num("limit", 0) as i64;
            Ok(closed_loop(&args, &chans, move |ch, _, _| {
                let req = RangeRequest {
                    key: key.clone(),
                    range_end: range_end.clone(),
                    serializable,
                    limit,
                    ..Default::default()
                };
                async move { ch.call::<_, RangeResponse>(RANGE, &req).await.map(|_| ()) }
            })
            .await)
        }
        "txn-put" => {
            let a = args.clone();
            let ops = args.num("txn-ops", 1);
            Ok(closed_loop(&args, &chans, move |ch, i, mut rng| {
                let success = (0..ops)
                    .map(|j| RequestOp {
                        request: Some(Op::RequestPut(PutRequest {
                            key: key_for(&a, i * ops + j, &mut rng),
                            value: value.to_vec(),
                            ..Default::default()
                        })),
                    })
                    .collect();
                let txn = TxnRequest { success, ..Default::default() };
                async move { ch.call::<_, TxnResponse>(TXN, &txn).await.map(|_| ()) }
            })
            .await)
        }
        "stm" => {
            // Read-modify-write as etcd's STM does it: read the keys, then commit if none changed since.
            let a = args.clone();
            let keys_per_txn = args.num("keys-per-txn", 1).max(1);
            Ok(closed_loop(&args, &chans, move |ch, i, mut rng| {
                let keys: Vec<Vec<u8>> = (0..keys_per_txn).map(|j| key_for(&a, i + j, &mut rng)).collect();
                let value = value.to_vec();
                async move {
                    loop {
                        let mut compare = Vec::new();
                        let mut success = Vec::new();
                        for k in &keys {
                            let r: RangeResponse =
                                ch.call(RANGE, &RangeRequest { key: k.clone(), ..Default::default() }).await?;
                            let rev = r.kvs.first().map_or(0, |kv| kv.mod_revision);
                            compare.push(Compare {
                                result: CompareResult::Equal as i32,
                                target: CompareTarget::Mod as i32,
                                key: k.clone(),
                                target_union: Some(TargetUnion::ModRevision(rev)),
                                ..Default::default()
                            });
                            success.push(RequestOp {
                                request: Some(Op::RequestPut(PutRequest {
                                    key: k.clone(),
                                    value: value.clone(),
                                    ..Default::default()
                                })),
                            });
                        }
                        let t: TxnResponse = ch.call(TXN, &TxnRequest { compare, success, failure: vec![] }).await?;
                        if t.succeeded {
                            return Ok(());
                        }
                    }
                }
            })
            .await)
        }
        other => Err(format!("unknown workload {other}\n{}", crate::usage())),
    }
}

/// The streaming workloads, over tonic channels.
async fn streaming(args: &Args) -> Result<Value, String> {
    let chans = connect(args).await?;
    match args.workload.as_str() {
        "lease-keepalive" => lease_keepalive(args, &chans).await,
        _ => watch(args, &chans, args.num("val-size", 256) as usize).await,
    }
}

impl Args {
    fn clone_values(&self) -> Args {
        Args { workload: self.workload.clone(), values: self.values.clone() }
    }
}

/// Every client holds a lease and a keep-alive stream, and sends keep-alives back to back.
async fn lease_keepalive(args: &Args, chans: &[Channel]) -> Result<Value, String> {
    let total = args.num("total", 10_000);
    let clients = args.num("clients", 1).max(1);
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut lease = LeaseClient::new(chans[c as usize % chans.len()].clone());
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Latencies::default();
            let Ok(g) = lease.lease_grant(LeaseGrantRequest { ttl: 3600, id: 0 }).await else {
                return lat;
            };
            let id = g.into_inner().id;
            let (tx, rx) = mpsc::channel(1);
            if next.fetch_add(1, Ordering::Relaxed) >= total {
                return lat;
            }
            // The first keep-alive goes before the call: a gRPC server may send its headers only with the
            // first answer.
            let mut t = Instant::now();
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                return lat;
            }
            let Ok(resp) = lease.lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx)).await else {
                return lat;
            };
            let mut inbound = resp.into_inner();
            loop {
                match inbound.next().await {
                    Some(Ok(_)) => lat.record(t.elapsed()),
                    _ => break,
                }
                if next.fetch_add(1, Ordering::Relaxed) >= total {
                    break;
                }
                t = Instant::now();
                if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                    break;
                }
            }
            lat
        }));
    }
    Ok(report(tasks, start, |done| total.saturating_sub(done)).await)
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
}

/// `--watchers` watchers on one key prefix over `--streams` streams; a writer puts `--puts` values (at
/// `--put-rate` per second, 0 = back to back), each carrying its send time, and every stream measures
/// put→event latency. Reports events delivered per second and the latency percentiles.
async fn watch(args: &Args, chans: &[Channel], val_size: usize) -> Result<Value, String> {
    let watchers = args.num("watchers", 100).max(1);
    let streams = args.num("streams", 10).clamp(1, watchers);
    let puts = args.num("puts", 100);
    let rate = args.num("put-rate", 0);
    let prefix = b"watch-bench/".to_vec();
    let expected = watchers * puts;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Latencies>();
    let mut ready = Vec::new();
    for s in 0..streams {
        let n = watchers / streams + u64::from(s < watchers % streams);
        let mut client = WatchClient::new(chans[s as usize % chans.len()].clone());
        let (tx, rx) = mpsc::channel(n as usize + 1);
        for _ in 0..n {
            let create =
                WatchCreateRequest { key: prefix.clone(), range_end: prefix_end(&prefix), ..Default::default() };
            tx.send(WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) })
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut inbound = client
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        ready.push(ready_rx);
        let done = done_tx.clone();
        let want = n * puts;
        tokio::spawn(async move {
            let _keep = tx; // closing the request side would end the stream
            let mut created = 0;
            let mut ready_tx = Some(ready_tx);
            let mut lat = Latencies::default();
            let mut seen = 0;
            while let Some(Ok(resp)) = inbound.next().await {
                if resp.created {
                    created += 1;
                    if created == n {
                        if let Some(r) = ready_tx.take() {
                            let _ = r.send(());
                        }
                    }
                }
                let now = now_nanos();
                for ev in resp.events {
                    if let Some(kv) = ev.kv {
                        let sent = kv.value.get(..8).map_or(now, |b| u64::from_be_bytes(b.try_into().unwrap()));
                        lat.record(Duration::from_nanos(now.saturating_sub(sent)));
                        seen += 1;
                    }
                }
                if seen >= want {
                    break;
                }
            }
            let _ = done.send(lat);
        });
    }
    drop(done_tx);
    for r in ready {
        let _ = r.await;
    }
    let mut kv = KvClient::new(chans[0].clone());
    let start = Instant::now();
    let gap = if rate > 0 { Some(Duration::from_secs_f64(1.0 / rate as f64)) } else { None };
    for i in 0..puts {
        let mut value = now_nanos().to_be_bytes().to_vec();
        value.resize(val_size.max(8), b'v');
        let mut key = prefix.clone();
        key.extend_from_slice(format!("{}", i % 16).as_bytes());
        kv.put(PutRequest { key, value, ..Default::default() }).await.map_err(|e| e.to_string())?;
        if let Some(g) = gap {
            let due = start + g * (i as u32 + 1);
            tokio::time::sleep_until(due.into()).await;
        }
    }
    let mut all = Latencies::default();
    let wait = tokio::time::timeout(Duration::from_secs(args.num("timeout", 120)), async {
        while let Some(l) = done_rx.recv().await {
            all.merge(l);
        }
    });
    let timed_out = wait.await.is_err();
    let secs = start.elapsed().as_secs_f64();
    let events = all.len();
    Ok(json!({"requests": puts, "events": events, "expected_events": expected, "timed_out": timed_out,
              "seconds": secs, "events_per_second": events as f64 / secs, "rps": events as f64 / secs,
              "errors": expected.saturating_sub(events as u64), "latency_ms": all.summary()}))
}
