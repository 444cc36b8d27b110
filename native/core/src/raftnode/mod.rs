//! Raft on our WAL: bootstrap and restart of a member's raft state, and the log drain.
//!
//! raft-rs's `MemStorage` holds the log in memory, as etcd's raft.MemoryStorage does; the WAL makes it
//! durable. The caller's duties per Ready (etcd-io/raft's contract, which raft-rs keeps):
//! 1. apply the committed entries it hands over (they are already persisted locally);
//! 2. persist new entries and the HardState to the WAL, fsynced, and append them to the storage;
//! 3. only then send the messages that must follow persistence;
//! 4. advance, and do 1 and 3 again for the light ready.
pub mod logger;
pub mod storage;

pub use storage::{open_or_bootstrap, Bootstrap, RaftState, RaftStorage};
