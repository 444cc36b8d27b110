//! The server: validate at the edge, propose through raft, apply, answer the waiter (etcd's etcdserver).
//!
//! A write request's path: the gRPC edge checks it ([`validate`]), [`EtcdServer::propose`] encodes it as an
//! `InternalRaftRequest` with a fresh id, parks a waiter and wakes the driver; the driver (Python, once per
//! batch) calls [`EtcdServer::process_ready`], which proposes the queued requests, persists the Ready to the
//! WAL, applies committed entries in one backend batch ([`apply`]) and completes the waiters. Linearizable
//! reads wait for a ReadIndex confirmed by raft and applied locally, batched the same way.
pub mod alarm;
pub mod apply;
pub mod errors;
pub mod membership;
mod notify;
pub mod raft_stats;
pub mod server;
mod server_apply;
mod server_cluster;
mod server_propose;
mod snapshot;
pub mod v2;
mod v2_auth;
mod v3_server;
pub mod validate;

pub use errors::EtcdError;
pub use server::{ApplyResponse, EtcdServer, ServerConfig};
