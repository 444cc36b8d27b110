//! The client edge: etcd's v3 gRPC services and its plain-HTTP endpoints on the same port, as etcd's client
//! listener serves both (gRPC over h2c, HTTP/1.1 for `/version` and `/health`).
//!
//! [`Edge`] owns the tokio runtime. It is created by the Python shell after any fork and shut down
//! explicitly; no tokio thread ever touches Python.
mod auth;
mod cluster;
mod concurrency;
mod front;
mod gateway;
mod grpc_metrics;
mod h2authority;
pub(crate) mod header;
pub(crate) mod http;
mod kv;
mod lease;
mod maintenance;
mod metrics;
mod serve;
mod v3election;
mod v3lock;
mod watch;

pub use concurrency::prefix_end;
pub use header::status;
pub(crate) use serve::bind_all;
pub use serve::Edge;
