//! HashKV: a CRC-32C over the `key` bucket up to a revision, computed exactly as etcd 3.4 does (bucket name,
//! then every revision key and encoded KeyValue in order, skipping rows a compaction is dropping), so two
//! members with the same history agree, and a member agrees with etcd itself on the same data.
use super::kvstore::KvStore;
use super::revision::Revision;
use super::MvccError;

impl KvStore {
    /// (hash, compact revision, current revision) of the history up to `rev` (0 = current).
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64), MvccError> {
        let view = self.read()?;
        let cur = view.state.current_rev;
        let compact = view.state.compact_main_rev;
        if rev > 0 && rev <= compact {
            return Err(MvccError::Compacted);
        }
        if rev > cur {
            return Err(MvccError::FutureRev);
        }
        let rev = if rev <= 0 { cur } else { rev };
        // What a compaction at `rev` would keep, as etcd asks its index.
        let keep = view.state.index.hash_keep(rev);
        let upper = Revision::new(rev + 1, 0);
        let lower = Revision::new(compact + 1, 0);
        let mut h = crc32c::crc32c(b"key");
        view.for_each_row(Revision::new(0, 0), |kr, tomb, v| {
            if kr >= upper {
                return;
            }
            if kr < lower && !keep.is_empty() && !keep.contains(&kr) {
                return;
            }
            if tomb && kr < lower {
                // A tombstone at the compaction revision stays for watchers starting there (etcd #18089); etcd
                // 3.4 purges every tombstone at or below it, and the hash is its hash of the same history.
                return;
            }
            let mut k = [b't'; 18];
            k[..17].copy_from_slice(&kr.to_bytes());
            let k = if tomb { &k[..] } else { &k[..17] };
            h = crc32c::crc32c_append(crc32c::crc32c_append(h, k), v);
        })?;
        Ok((h, compact, cur))
    }
}
