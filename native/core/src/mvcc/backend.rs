//! The disk backend: an mmap'd B+tree (LMDB through `heed`), etcd's bbolt in our build.
//!
//! Buckets, as etcd names them:
//! - `key`: revision bytes (see [`Revision::to_bytes`]) → encoded `mvccpb.KeyValue`. A tombstone's key carries
//!   a trailing `t` and its value holds only the key.
//! - `meta`: `consistent_index` (the raft index of the last applied entry), `scheduledCompactRev` and
//!   `finishedCompactRev` (see `kvstore_compaction`), and the alarms.
//!
//! Durability contract: the WAL is the source of truth for acknowledged writes; the backend is a cache of the
//! applied state. Writes reach it as [`Ops`], committed together with the consistent index in one LMDB
//! transaction ([`Backend::commit_ops`]), so after a crash the backend is exactly "everything up to
//! consistent_index" and replay starts after it (etcd #13766). The store gathers many raft batches into one
//! commit (see `kvstore`), as etcd's batchTx does. The environment runs with `NO_META_SYNC`: data pages are
//! flushed at commit, the meta page lazily; a machine crash can roll the backend back by a transaction, never
//! corrupt it, and the WAL replays what was lost.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use prost::Message as _;

use super::revision::Revision;

pub const CONSISTENT_INDEX_KEY: &[u8] = b"consistent_index";
pub const FINISHED_COMPACT_KEY: &[u8] = b"finishedCompactRev";
pub const SCHEDULED_COMPACT_KEY: &[u8] = b"scheduledCompactRev";

/// Backend errors are environment failures (disk full, map full, I/O); none is a user error.
#[derive(Debug)]
pub struct BackendError(pub String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backend: {}", self.0)
    }
}

impl std::error::Error for BackendError {}

impl From<heed::Error> for BackendError {
    fn from(e: heed::Error) -> Self {
        BackendError(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, BackendError>;

/// etcd's leasepb.Lease {ID = 1, TTL = 2} encoding, for snapshots.
fn lease_pb(id: i64, ttl: i64) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut b = Vec::new();
    if id != 0 {
        b.push(0x08);
        varint(&mut b, id as u64);
    }
    if ttl != 0 {
        b.push(0x10);
        varint(&mut b, ttl as u64);
    }
    b
}

/// The bucket an [`Op`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Key,
    Meta,
    Lease,
}

/// One backend write: a put, or a delete when `value` is None.
#[derive(Clone, Debug)]
pub struct Op {
    pub bucket: Bucket,
    pub key: Vec<u8>,
    pub value: Option<Arc<Vec<u8>>>,
}

/// Backend writes not yet committed, in the order they were made.
#[derive(Default, Debug)]
pub struct Ops(pub Vec<Op>);

impl Ops {
    fn push(&mut self, bucket: Bucket, key: &[u8], value: Option<Arc<Vec<u8>>>) {
        self.0.push(Op { bucket, key: key.to_vec(), value });
    }

    /// An encoded KeyValue at its revision key (shared with the store's pending map, not copied).
    pub fn put_kv(&mut self, rev_key: &[u8], value: Arc<Vec<u8>>) {
        self.push(Bucket::Key, rev_key, Some(value));
    }

    pub fn put_meta(&mut self, key: &[u8], value: &[u8]) {
        self.push(Bucket::Meta, key, Some(Arc::new(value.to_vec())));
    }

    pub fn put_meta_u64(&mut self, key: &[u8], v: u64) {
        self.put_meta(key, &v.to_be_bytes());
    }

    pub fn delete_meta(&mut self, key: &[u8]) {
        self.push(Bucket::Meta, key, None);
    }

    pub fn put_lease(&mut self, id: i64, ttl: i64) {
        self.push(Bucket::Lease, &id.to_be_bytes(), Some(Arc::new(ttl.to_be_bytes().to_vec())));
    }

    pub fn delete_lease(&mut self, id: i64) {
        self.push(Bucket::Lease, &id.to_be_bytes(), None);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Moves `other`'s writes after these.
    pub fn append(&mut self, other: &mut Ops) {
        self.0.append(&mut other.0);
    }
}

pub struct Backend {
    env: Env<WithoutTls>,
    key: Database<Bytes, Bytes>,
    meta: Database<Bytes, Bytes>,
    lease: Database<Bytes, Bytes>,
    path: PathBuf,
}

/// The LMDB map is virtual address space, not disk: reserve plenty so a large store never hits MDB_MAP_FULL
/// before the quota (--quota-backend-bytes, at most 8 GiB recommended) does.
const MAP_SIZE: usize = 64 << 30;

impl Backend {
    /// Opens (or creates) the backend directory `dir` (etcd's `member/snap/db`; LMDB wants a directory).
    pub fn open(dir: &Path) -> Result<Backend> {
        std::fs::create_dir_all(dir).map_err(|e| BackendError(format!("create {}: {e}", dir.display())))?;
        let mut opts = EnvOpenOptions::new().read_txn_without_tls();
        opts.map_size(MAP_SIZE).max_dbs(8).max_readers(1024);
        // SAFETY: the directory is owned by this process (the data dir is locked by the server), and
        // NO_META_SYNC keeps LMDB's integrity guarantee (see the module doc).
        let env = unsafe {
            opts.flags(EnvFlags::NO_META_SYNC);
            opts.open(dir)?
        };
        let mut wtxn = env.write_txn()?;
        let key = env.create_database(&mut wtxn, Some("key"))?;
        let meta = env.create_database(&mut wtxn, Some("meta"))?;
        let lease = env.create_database(&mut wtxn, Some("lease"))?;
        wtxn.commit()?;
        Ok(Backend { env, key, meta, lease, path: dir.to_path_buf() })
    }

    pub fn read_txn(&self) -> Result<RoTxn<'_, WithoutTls>> {
        Ok(self.env.read_txn()?)
    }

    pub fn write_txn(&self) -> Result<RwTxn<'_>> {
        Ok(self.env.write_txn()?)
    }

    /// Commits `ops` in order, and the consistent index with them, in one transaction (one fdatasync).
    pub fn commit_ops(&self, ops: &Ops, consistent_index: u64) -> Result<()> {
        let mut txn = self.env.write_txn()?;
        for op in &ops.0 {
            let db = match op.bucket {
                Bucket::Key => &self.key,
                Bucket::Meta => &self.meta,
                Bucket::Lease => &self.lease,
            };
            match &op.value {
                Some(v) => db.put(&mut txn, &op.key, v)?,
                None => {
                    db.delete(&mut txn, &op.key)?;
                }
            }
        }
        self.put_meta_u64(&mut txn, CONSISTENT_INDEX_KEY, consistent_index)?;
        let start = std::time::Instant::now();
        txn.commit()?;
        crate::histogram::BACKEND_COMMIT.observe(start.elapsed());
        Ok(())
    }

    pub fn get_kv(&self, txn: &RoTxn<'_, WithoutTls>, rev: &Revision) -> Result<Option<Vec<u8>>> {
        Ok(self.key.get(txn, &rev.to_bytes())?.map(|v| v.to_vec()))
    }

    pub fn delete_kv(&self, txn: &mut RwTxn<'_>, rev_key: &[u8]) -> Result<bool> {
        Ok(self.key.delete(txn, rev_key)?)
    }

    /// Visits every (revision key, value) in revision order; used to rebuild the in-memory index at start-up.
    pub fn for_each_kv(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<()> {
        let txn = self.read_txn()?;
        for item in self.key.iter(&txn)? {
            let (k, v) = item?;
            f(k, v);
        }
        Ok(())
    }

    /// Visits every (revision key, value) in `[from, to)` (`to` None: to the end), in revision order.
    pub fn for_each_kv_between(
        &self,
        txn: &RoTxn<'_, WithoutTls>,
        from: Revision,
        to: Option<Revision>,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        let start = from.to_bytes();
        let end = to.map(|r| r.to_bytes());
        let upper = match &end {
            Some(e) => std::ops::Bound::Excluded(&e[..]),
            None => std::ops::Bound::Unbounded,
        };
        let bounds = (std::ops::Bound::Included(&start[..]), upper);
        for item in self.key.range(txn, &bounds)? {
            let (k, v) = item?;
            f(k, v);
        }
        Ok(())
    }

    /// Up to `limit` revision keys in `[from, end)`, in order (one purge batch).
    pub fn keys_between(&self, txn: &RwTxn<'_>, from: &[u8], end: &[u8], limit: usize) -> Result<Vec<Vec<u8>>> {
        let bounds = (std::ops::Bound::Included(from), std::ops::Bound::Excluded(end));
        let mut out = Vec::new();
        for item in self.key.range(txn, &bounds)? {
            let (k, _) = item?;
            out.push(k.to_vec());
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Every (lease id, TTL) the backend holds.
    pub fn leases(&self) -> Result<Vec<(i64, i64)>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.lease.iter(&txn)? {
            let (k, v) = item?;
            let (Ok(k), Ok(v)) = (<[u8; 8]>::try_from(k), <[u8; 8]>::try_from(v)) else {
                return Err(BackendError("lease bucket: bad record".into()));
            };
            out.push((i64::from_be_bytes(k), i64::from_be_bytes(v)));
        }
        Ok(out)
    }

    pub fn get_meta_u64(&self, key: &[u8]) -> Result<Option<u64>> {
        let txn = self.read_txn()?;
        Ok(self.meta.get(&txn, key)?.and_then(|v| v.try_into().ok().map(u64::from_be_bytes)))
    }

    pub fn put_meta_u64(&self, txn: &mut RwTxn<'_>, key: &[u8], v: u64) -> Result<()> {
        Ok(self.meta.put(txn, key, &v.to_be_bytes())?)
    }

    /// Bytes the backend occupies on disk (etcd's dbSize).
    pub fn size(&self) -> u64 {
        self.env.real_disk_size().unwrap_or(0)
    }

    /// Bytes of pages holding data, free pages excluded (etcd's dbSizeInUse). LMDB reuses freed pages, so
    /// this is also what the quota is checked against.
    pub fn size_in_use(&self) -> u64 {
        self.env.non_free_pages_size().unwrap_or(0)
    }

    /// The whole backend as a bbolt file in etcd's bucket layout (what the Snapshot RPC streams): `key` as is,
    /// `lease` values as leasepb.Lease, the compaction revisions in `meta` as revision keys, alarms in `alarm`.
    pub fn snapshot_bbolt(&self) -> Result<Vec<u8>> {
        use super::bbolt::Bucket;
        let txn = self.read_txn()?;
        let all = |db: &Database<Bytes, Bytes>| -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            let mut v = Vec::new();
            for item in db.iter(&txn)? {
                let (k, val) = item?;
                v.push((k.to_vec(), val.to_vec()));
            }
            Ok(v)
        };
        let mut meta = Vec::new();
        let mut alarm = Vec::new();
        let (mut auth, mut users, mut roles) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in all(&self.meta)? {
            // Auth records become etcd's own buckets, so a restored snapshot carries the users and roles.
            if let Some(name) = k.strip_prefix(b"auth/") {
                auth.push((name.to_vec(), v));
            } else if let Some(name) = k.strip_prefix(b"authUsers/") {
                users.push((name.to_vec(), v));
            } else if let Some(name) = k.strip_prefix(b"authRoles/") {
                roles.push((name.to_vec(), v));
            } else if k == b"alarms" {
                let list = crate::pb::etcdserverpb::AlarmResponse::decode(v.as_slice())
                    .map_err(|e| BackendError(e.to_string()))?;
                alarm = list.alarms.iter().map(|a| (a.encode_to_vec(), Vec::new())).collect();
            } else if k == FINISHED_COMPACT_KEY || k == SCHEDULED_COMPACT_KEY {
                let rev = u64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8])) as i64;
                meta.push((k, Revision::new(rev, 0).to_bytes().to_vec()));
            } else {
                meta.push((k, v));
            }
        }
        alarm.sort();
        let lease = all(&self.lease)?
            .into_iter()
            .map(|(k, v)| {
                let id = i64::from_be_bytes(k.as_slice().try_into().unwrap_or([0; 8]));
                let ttl = i64::from_be_bytes(v.as_slice().try_into().unwrap_or([0; 8]));
                (k, lease_pb(id, ttl))
            })
            .collect();
        let buckets = [
            Bucket { name: b"alarm".to_vec(), pairs: alarm },
            Bucket { name: b"auth".to_vec(), pairs: auth },
            Bucket { name: b"authRoles".to_vec(), pairs: roles },
            Bucket { name: b"authUsers".to_vec(), pairs: users },
            Bucket { name: b"key".to_vec(), pairs: all(&self.key)? },
            Bucket { name: b"lease".to_vec(), pairs: lease },
            Bucket { name: b"meta".to_vec(), pairs: meta },
        ];
        // Auth buckets never written are left out (etcd creates missing ones at open), which keeps a small
        // store's snapshot as small as etcd's, where empty buckets are stored inline.
        let buckets: Vec<Bucket> =
            buckets.into_iter().filter(|b| !b.pairs.is_empty() || !b.name.starts_with(b"auth")).collect();
        Ok(super::bbolt::write(&buckets))
    }

    /// CRC-32C over every bucket's name, keys and values (the Hash RPC).
    pub fn hash_all(&self) -> Result<u32> {
        let txn = self.read_txn()?;
        let mut h = 0u32;
        for (name, db) in [("key", &self.key), ("lease", &self.lease), ("meta", &self.meta)] {
            h = crc32c::crc32c_append(h, name.as_bytes());
            for item in db.iter(&txn)? {
                let (k, v) = item?;
                h = crc32c::crc32c_append(crc32c::crc32c_append(h, k), v);
            }
        }
        Ok(h)
    }

    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let txn = self.read_txn()?;
        Ok(self.meta.get(&txn, key)?.map(|v| v.to_vec()))
    }

    /// Every `meta` record whose key starts with `prefix`.
    pub fn meta_with_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for item in self.meta.prefix_iter(&txn, prefix)? {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// The whole backend as one consistent dump (what a raft snapshot carries to a member that fell behind):
    /// per bucket a tag byte and its records as length-prefixed key/value pairs, then a 0 tag.
    pub fn dump(&self) -> Result<Vec<u8>> {
        let txn = self.read_txn()?;
        let mut out = Vec::new();
        for (tag, db) in [(1u8, &self.key), (2, &self.meta), (3, &self.lease)] {
            for item in db.iter(&txn)? {
                let (k, v) = item?;
                out.push(tag);
                out.extend_from_slice(&(k.len() as u32).to_be_bytes());
                out.extend_from_slice(k);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
        out.push(0);
        Ok(out)
    }

    /// Replaces every bucket's contents with `dump`'s, in one transaction.
    pub fn restore_dump(&self, dump: &[u8]) -> Result<()> {
        let bad = || BackendError("snapshot dump: truncated".into());
        let mut txn = self.write_txn()?;
        for db in [&self.key, &self.meta, &self.lease] {
            db.clear(&mut txn)?;
        }
        let mut p = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = dump.get(p..p + n).ok_or_else(bad)?;
            p += n;
            Ok(s)
        };
        loop {
            let tag = take(1)?[0];
            let db = match tag {
                0 => break,
                1 => &self.key,
                2 => &self.meta,
                3 => &self.lease,
                t => return Err(BackendError(format!("snapshot dump: bad bucket tag {t}"))),
            };
            let kl = u32::from_be_bytes(take(4)?.try_into().unwrap()) as usize;
            let k = take(kl)?;
            let vl = u32::from_be_bytes(take(4)?.try_into().unwrap()) as usize;
            let v = take(vl)?;
            db.put(&mut txn, k, v)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn sync(&self) -> Result<()> {
        Ok(self.env.force_sync()?)
    }
}
