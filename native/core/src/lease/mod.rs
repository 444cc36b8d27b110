//! Leases: a TTL that keys attach to; when it expires or is revoked, its keys are deleted (etcd's lease
//! package, the `lessor`).
//!
//! Who does what:
//! - Grant and revoke are raft requests: the applier calls [`Lessor::grant`] and, for revoke, deletes the
//!   attached keys in one write request (one revision, one DELETE event per key) before [`Lessor::revoke`].
//!   The lease bucket of the backend is written in the same batch (see `mvcc::kvstore_lease`).
//! - Attach/detach follow every put and delete inside the MVCC write path; the lessor keeps the key → lease
//!   map (etcd's itemMap), so a put never reads the old value to learn its old lease.
//! - Renewal (KeepAlive) is local to the *primary* lessor (the leader's) and does not go through raft.
//! - Expiry is decided by the primary only ([`Lessor::expired`], polled on each raft tick): it proposes a
//!   revoke through raft, like etcd's revoke loop. A lessor that is not primary never expires anything.
//! - On promotion (becoming leader, or the start of a single member) every lease gets its full TTL again,
//!   as etcd does on a leader change.
mod lessor;

pub use lessor::{Lessor, MAX_LEASE_TTL};
