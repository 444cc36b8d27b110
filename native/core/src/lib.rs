//! pyetcd_fast's native core: everything on the per-request path, with no Python in it.
//!
//! The flow, by module: [`v3rpc`] (gRPC/HTTP edge) → [`etcdserver`] (validate, propose, wait; the Ready loop;
//! apply) → [`raftnode`] + [`wal`] (raft on a durable log) → [`mvcc`] (revision index and backend).
//! The PyO3 binding (native/py) only converts types and releases the GIL around [`etcdserver::EtcdServer`]'s
//! calls; the Python shell drives the Ready loop once per batch.
pub mod auth;
pub mod client;
#[cfg(test)]
mod datadriven;
pub mod etcdserver;
pub mod failpoint;
pub mod failstop;
pub mod histogram;
pub mod lease;
pub mod micro;
pub mod mvcc;
pub mod pb;
pub mod rafthttp;
pub mod raftnode;
pub mod transport;
pub mod v2auth;
pub mod v2http;
pub mod v2store;
pub mod v3rpc;
pub mod wal;
