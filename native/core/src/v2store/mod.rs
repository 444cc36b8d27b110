//! The v2 keys API's store (etcd's v2store): a hierarchical tree of files and dirs, separate from the v3
//! keyspace, replicated through raft like every write.
//!
//! Contract:
//!
//! 1. [`Store`] is pure state. Every write takes the times it needs as unix nanoseconds (a TTL arrives as
//!    an absolute expiry the proposer computed; expiry happens only when a SYNC request applies), so
//!    members applying the same requests in the same order hold the same tree and the same index.
//! 2. Each successful write bumps the store index by one and yields one [`Event`]; a failure changes
//!    nothing but the counters (and, as in etcd, dirs a create walked through) and yields a [`V2Error`]
//!    with etcd's code, cause and the current index.
//! 3. Watchers ([`Watcher`]) receive events on a channel; the last 1,000 events answer a `waitIndex` in the
//!    past; older ones are error 401.
//! 4. JSON is written as etcd's Go encoder writes it ([`Event::to_json`], [`V2Error::to_json`]).
//!
//! [`apply::apply`] maps a raft-carried [`V2Request`] onto the store the way etcd's applier does.
pub mod apply;
pub mod error;
pub mod event;
pub mod json;
pub mod node;
pub mod path;
pub mod perms;
pub mod persist;
pub mod stats;
pub mod store;
pub mod watcher_hub;

#[cfg(test)]
mod datadriven_tests;

pub use apply::{apply, Method, V2Request};
pub use error::V2Error;
pub use event::{Action, Event, NodeExtern};
pub use store::{Store, Ttl};
pub use watcher_hub::Watcher;
