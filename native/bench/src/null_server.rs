//! `pyetcd-bench null-server --listen 127.0.0.1:PORT`: a KV service that stores nothing and answers every
//! call at once (Range: no keys; Put, DeleteRange, Txn, Compact: an empty success). It is the fastest server
//! a client could meet over the same gRPC edge (tonic, HTTP/2) as ours, so a client's rate against it is the
//! most that client can drive on this machine: the ceiling `bench.probe xl` puts beside etcd and us.
//!
//! It prints `listening <addr>` once it accepts calls; for each line read on stdin it prints `{"puts": N}`
//! (the Put calls answered so far, for per-write figures); it exits at the end of stdin.
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etcd_core::pb::etcdserverpb::kv_server::{Kv, KvServer};
use etcd_core::pb::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
};
use serde_json::json;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use crate::Args;

struct NullKv {
    puts: Arc<AtomicU64>,
}

fn header() -> Option<ResponseHeader> {
    Some(ResponseHeader { cluster_id: 1, member_id: 1, revision: 1, raft_term: 1 })
}

#[tonic::async_trait]
impl Kv for NullKv {
    async fn range(&self, _: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        Ok(Response::new(RangeResponse { header: header(), ..Default::default() }))
    }

    async fn put(&self, _: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        Ok(Response::new(PutResponse { header: header(), ..Default::default() }))
    }

    async fn delete_range(&self, _: Request<DeleteRangeRequest>) -> Result<Response<DeleteRangeResponse>, Status> {
        Ok(Response::new(DeleteRangeResponse { header: header(), ..Default::default() }))
    }

    async fn txn(&self, _: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        Ok(Response::new(TxnResponse { header: header(), succeeded: true, ..Default::default() }))
    }

    async fn compact(&self, _: Request<CompactionRequest>) -> Result<Response<CompactionResponse>, Status> {
        Ok(Response::new(CompactionResponse { header: header() }))
    }
}

/// Serves until stdin ends, printing the count of Put calls for each line read.
pub async fn serve(args: &Args) -> Result<(), String> {
    let listen = args.str("listen", "127.0.0.1:0");
    let listener = tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("listen {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let puts = Arc::new(AtomicU64::new(0));
    let svc = KvServer::new(NullKv { puts: puts.clone() });
    // The builder's tcp_nodelay does not reach a listener of our own: the incoming stream sets it, as ours does.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let (done, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        for _ in std::io::stdin().lock().lines().map_while(Result::ok) {
            println!("{}", json!({"puts": puts.load(Ordering::Relaxed)}));
        }
        drop(done);
    });
    println!("listening {addr}");
    Server::builder()
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stdin_closed.await;
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}
