//! etcd's v2 HTTP API on the client port (its etcdserver/api/v2http): `/v2/keys` ([`keys`]) and
//! `/v2/stats/store`. Served natively like the rest of the client port; the store is [`crate::v2store`] on
//! the member, written through raft.
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Router;

use crate::etcdserver::EtcdServer;

pub mod form;
pub mod keys;

pub fn router(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/v2/keys", any(keys::keys))
        .route("/v2/keys/", any(keys::keys))
        .route("/v2/keys/{*key}", any(keys::keys))
        .route("/v2/stats/store", get(store_stats))
        .with_state(server)
}

/// The v2 store's operation counters.
async fn store_stats(State(server): State<Arc<EtcdServer>>) -> impl IntoResponse {
    let body = {
        let store = server.v2.lock();
        store.stats.to_json(store.hub.count())
    };
    ([(header::CONTENT_TYPE, "application/json")], body)
}
