//! Multi-version concurrency control: etcd's data model.
//!
//! Every write request (a put, a delete that matches something, a txn whose branch writes) is one *main*
//! revision; the operations inside it are *sub* revisions 0, 1, 2, ... The store starts at revision 1, so
//! the first write of an empty store is revision 2. A worked example:
//!
//! ```text
//!   put foo=a          → rev 2.0   foo: create=2 mod=2 version=1
//!   txn {put foo=b;    → rev 3.0   foo: create=2 mod=3 version=2
//!        put bar=x}    → rev 3.1   bar: create=3 mod=3 version=1
//!   del foo            → rev 4.0   foo: tombstone (the generation ends)
//!   put foo=c          → rev 5.0   foo: create=5 mod=5 version=1 (a new generation)
//!   compact 4          → keeps bar@3.1; drops foo@2.0, foo@3.0 and the tombstone 4.0; foo@5.0 stays
//! ```
//!
//! Reads at revision r see, per key, the newest revision <= r of the generation alive at r. Two
//! structures hold that: the in-memory revision index ([`index::TreeIndex`], key → generations) and the disk
//! backend ([`backend::Backend`], revision → KeyValue). Readers take a [`kvstore::ReadView`]; the applier,
//! the only writer, opens one [`kvstore::WriteBatch`] per raft Ready and one write txn per request in it.
pub mod backend;
pub mod bbolt;
pub mod index;
pub mod key_index;
pub mod kvstore;
pub mod kvstore_compaction;
pub mod kvstore_hash;
pub mod kvstore_lease;
pub mod kvstore_txn;
pub mod revision;
pub mod watchable_store;
pub mod watcher;

#[cfg(test)]
mod datadriven_tests;
#[cfg(test)]
mod kvstore_tests;
#[cfg(test)]
mod watchable_store_tests;

pub use kvstore::{KvStore, ReadView, WriteBatch};
pub use kvstore_txn::{RangeOptions, RangeResult, TxnRead, TxnWrite};
pub use revision::Revision;

/// Errors of the MVCC layer; the server maps them to etcd's `etcdserver: mvcc: ...` gRPC errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MvccError {
    /// `mvcc: required revision has been compacted`
    Compacted,
    /// `mvcc: required revision is a future revision`
    FutureRev,
    Backend(String),
}

impl std::fmt::Display for MvccError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MvccError::Compacted => f.write_str("mvcc: required revision has been compacted"),
            MvccError::FutureRev => f.write_str("mvcc: required revision is a future revision"),
            MvccError::Backend(s) => write!(f, "mvcc: backend: {s}"),
        }
    }
}

impl std::error::Error for MvccError {}

impl From<backend::BackendError> for MvccError {
    fn from(e: backend::BackendError) -> Self {
        MvccError::Backend(e.0)
    }
}
