//! [`ClientPort`]: the service every client connection is served by. A call to one of etcd's gRPC methods
//! goes straight to its tonic service (counted for `grpc_server_handled_total`); another gRPC call gets
//! grpc-go's Unimplemented answer ("unknown service ...", "unknown method ... for service ..."); anything
//! else (the HTTP endpoints, the JSON gateway, v2) goes to the axum router. The gRPC calls are the hot path:
//! this skips the router's matching and its middleware's boxing for each of them.
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use tower::ServiceExt;

use super::auth::AuthService;
use super::grpc_metrics::{counted, method_index, METHODS};
use super::header::CertCommonName;
use super::v3election::ElectionService;
use super::v3lock::LockService;
use super::watch::{WatchGrpc, WatchService};
use super::{cluster::ClusterService, kv::KvService, lease::LeaseService, maintenance::MaintenanceService};
use crate::etcdserver::EtcdServer;
use crate::pb::etcdserverpb::auth_server::AuthServer;
use crate::pb::etcdserverpb::cluster_server::ClusterServer;
use crate::pb::etcdserverpb::kv_server::KvServer;
use crate::pb::etcdserverpb::lease_server::LeaseServer;
use crate::pb::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::pb::v3electionpb::election_server::ElectionServer;
use crate::pb::v3lockpb::lock_server::LockServer;

/// gRPC frames up to the request limit plus etcd's 512 KiB of overhead; larger ones are refused by gRPC.
const GRPC_OVERHEAD: usize = 512 * 1024;

type Answer = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The gRPC services and the router of everything else.
#[derive(Clone)]
pub(crate) struct ClientPort {
    kv: KvServer<KvService>,
    lease: LeaseServer<LeaseService>,
    watch: WatchGrpc,
    maintenance: MaintenanceServer<MaintenanceService>,
    cluster: ClusterServer<ClusterService>,
    lock: LockServer<LockService>,
    election: ElectionServer<ElectionService>,
    auth: AuthServer<AuthService>,
    http: axum::Router,
    /// The verified client certificate's common name of this connection (TLS with client-cert-auth).
    cert_cn: Option<Arc<str>>,
    max_streams: u32,
}

impl ClientPort {
    pub fn new(server: &Arc<EtcdServer>) -> ClientPort {
        let s = || server.clone();
        ClientPort {
            kv: KvServer::new(KvService { server: s() })
                .max_decoding_message_size(server.cfg.max_request_bytes + GRPC_OVERHEAD)
                .max_encoding_message_size(usize::MAX),
            lease: LeaseServer::new(LeaseService { server: s() }),
            watch: WatchGrpc(WatchService { server: s() }),
            maintenance: MaintenanceServer::new(MaintenanceService { server: s() }),
            cluster: ClusterServer::new(ClusterService { server: s() }),
            lock: LockServer::new(LockService { server: s() }),
            election: ElectionServer::new(ElectionService { server: s() }),
            auth: AuthServer::new(AuthService { server: s() }),
            http: http_router(server),
            cert_cn: None,
            max_streams: server.cfg.max_concurrent_streams,
        }
    }

    /// HTTP/2 streams one connection may have open at once (--max-concurrent-streams).
    pub fn max_concurrent_streams(&self) -> u32 {
        self.max_streams
    }

    /// This port for one connection whose client certificate says `cn`.
    pub fn with_common_name(&self, cn: Option<String>) -> ClientPort {
        ClientPort { cert_cn: cn.map(Arc::from), ..self.clone() }
    }
}

/// Everything on the client port but gRPC: `/version`, `/health`, `/metrics`, the JSON gateway, v2 when
/// enabled.
fn http_router(server: &Arc<EtcdServer>) -> axum::Router {
    let mut app = super::http::router(server.clone()).merge(super::gateway::router(server.clone()));
    if server.cfg.enable_v2 {
        app = app.merge(crate::v2http::router(server.clone()));
    }
    app.fallback(super::http::not_found)
}

/// Calls the tonic service `svc` (always ready) and counts its answer as RPC `method`.
fn grpc<S>(svc: S, req: Request<Incoming>, method: usize) -> Answer
where
    S: tower::Service<Request<Incoming>, Response = Response<tonic::body::Body>, Error = Infallible> + Send + 'static,
    S::Future: Send,
{
    Box::pin(async move {
        let resp = svc.oneshot(req).await?;
        Ok(counted(method, resp.map(Body::new)))
    })
}

/// grpc-go's answer to a call of a method the server does not have.
fn unimplemented(path: &str) -> Response<Body> {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let msg = if METHODS.iter().any(|&(s, _, _)| s == service) {
        format!("unknown method {method} for service {service}")
    } else {
        format!("unknown service {service}")
    };
    tonic::Status::unimplemented(msg).into_http()
}

fn is_grpc(req: &Request<Incoming>) -> bool {
    req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl hyper::service::Service<Request<Incoming>> for ClientPort {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut req: Request<Incoming>) -> Answer {
        if let Some(cn) = &self.cert_cn {
            req.extensions_mut().insert(CertCommonName(cn.clone()));
        }
        let Some(method) = method_index(req.uri().path()) else {
            if is_grpc(&req) {
                let resp = unimplemented(req.uri().path());
                return Box::pin(async move { Ok(resp) });
            }
            let http = self.http.clone();
            return Box::pin(async move { http.oneshot(req.map(Body::new)).await });
        };
        match METHODS[method].0 {
            "etcdserverpb.KV" => grpc(self.kv.clone(), req, method),
            "etcdserverpb.Watch" => grpc(self.watch.clone(), req, method),
            "etcdserverpb.Lease" => grpc(self.lease.clone(), req, method),
            "etcdserverpb.Cluster" => grpc(self.cluster.clone(), req, method),
            "etcdserverpb.Maintenance" => grpc(self.maintenance.clone(), req, method),
            "v3lockpb.Lock" => grpc(self.lock.clone(), req, method),
            "etcdserverpb.Auth" => grpc(self.auth.clone(), req, method),
            _ => grpc(self.election.clone(), req, method),
        }
    }
}
