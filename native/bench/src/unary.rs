//! Unary gRPC calls for the closed-loop workloads, over the native client's connections
//! ([`etcd_core::client::conn`]: each call is one HTTP/2 stream written straight onto h2, no task).
//!
//! The generator shares the two cores with the server it drives, so every microsecond it spends per
//! request is taken from the server; tonic's `Channel` puts each call through a buffer task and hyper
//! spawns a task to pipe each request body. Streaming workloads keep tonic.
use etcd_core::client::conn::{self, Conn};
use prost::Message;
use tonic::Status;

use crate::Args;

/// One HTTP/2 connection to an endpoint; clones share it.
#[derive(Clone)]
pub struct Unary(Conn);

/// `--conns` connections, round-robin over `--endpoints` (`host:port`, `http://host:port`, or
/// `https://host:port` with the server's CA in `--cacert`: TLS with ALPN h2, as grpc-go dials).
pub async fn connect(args: &Args) -> Result<Vec<Unary>, String> {
    let eps = crate::endpoints(args);
    let tls = if eps.iter().any(|e| e.starts_with("https://")) {
        let info = etcd_core::transport::TlsInfo { trusted_ca_file: args.str("cacert", ""), ..Default::default() };
        Some(conn::tls_connector(&info)?)
    } else {
        None
    };
    let mut out = Vec::new();
    for ep in eps {
        out.push(Unary(conn::connect(&ep, tls.as_ref()).await?));
    }
    Ok(out)
}

impl Unary {
    /// Calls `path` (`/etcdserverpb.KV/Put`) with `req` and decodes the answer.
    pub async fn call<Q: Message, R: Message + Default>(&self, path: &'static str, req: &Q) -> Result<R, Status> {
        self.0.call(path, req).await.map_err(Status::from)
    }
}
