//! etcd's v2 HTTP API on the client port (its etcdserver/api/v2http): `/v2/keys` ([`keys`]),
//! `/v2/members` and `/v2/machines` ([`members`]), `/v2/stats/*` ([`stats`]), `/v2/auth/*` ([`auth`]). Served natively like the
//! rest of the client port; the keys live in [`crate::v2store`] on the member, written through raft.
use std::sync::Arc;

use axum::body::Body;
use axum::http::Response;
use axum::routing::{any, get};
use axum::Router;

use crate::etcdserver::EtcdServer;

pub mod auth;
pub mod form;
pub mod keys;
pub mod members;
pub mod stats;

pub fn router(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/v2/keys", any(keys::keys))
        .route("/v2/keys/", any(keys::keys))
        .route("/v2/keys/{*key}", any(keys::keys))
        .route("/v2/members", any(members::members))
        .route("/v2/members/", any(members::members))
        .route("/v2/members/{*id}", any(members::members))
        .route("/v2/machines", any(members::machines))
        .route("/v2/auth/{*rest}", any(auth::auth))
        .route("/v2/stats/self", get(stats::self_stats))
        .route("/v2/stats/leader", get(stats::leader_stats))
        .route("/v2/stats/store", get(stats::store_stats))
        .with_state(server)
}

/// Every answer of the keys and members handlers names the cluster (`X-Etcd-Cluster-Id`), as etcd's do.
fn with_cluster_id(server: &EtcdServer, mut resp: Response<Body>) -> Response<Body> {
    let id = format!("{:x}", server.cluster_id()).parse().expect("hex is a header value");
    resp.headers_mut().insert("X-Etcd-Cluster-Id", id);
    resp
}
