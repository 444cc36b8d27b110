//! The client port's HTTP/1.1 endpoints: `/version` and `/health`, in etcd's JSON shapes, and `/metrics`.
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::etcdserver::EtcdServer;

/// The etcd release whose API we serve, and the cluster version etcd 3.4 reports.
pub const ETCD_SERVER_VERSION: &str = "3.4.23";
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

pub fn router(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/health", get(health))
        .route("/metrics", get(super::metrics::metrics))
        .with_state(server)
}

/// An unknown path: gRPC's UNIMPLEMENTED to a gRPC client, Go's "404 page not found" to anything else.
pub async fn not_found(headers: axum::http::HeaderMap) -> axum::response::Response {
    let grpc = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"));
    if grpc {
        return (StatusCode::OK, [(header::CONTENT_TYPE, "application/grpc"), (GRPC_STATUS, "12")]).into_response();
    }
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (NOSNIFF, "nosniff")];
    (StatusCode::NOT_FOUND, text, "404 page not found\n").into_response()
}

const GRPC_STATUS: header::HeaderName = header::HeaderName::from_static("grpc-status");
const NOSNIFF: header::HeaderName = header::HeaderName::from_static("x-content-type-options");

async fn version() -> impl IntoResponse {
    // etcd's two fields, so clients that parse them keep working; ours is an extra field they ignore.
    let body = format!(
        "{{\"etcdserver\":\"{ETCD_SERVER_VERSION}\",\"etcdcluster\":\"{ETCD_CLUSTER_VERSION}\",\"pyetcd_fast\":\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn health(State(server): State<Arc<EtcdServer>>) -> impl IntoResponse {
    // etcd 3.4: unhealthy (503) without a leader; the value is a string.
    let (code, body) = if server.leader() != 0 {
        (StatusCode::OK, "{\"health\":\"true\"}")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "{\"health\":\"false\"}")
    };
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}
