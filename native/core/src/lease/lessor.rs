//! [`Lessor`]: the leases, their attached keys, and the primary's clock.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// etcd's MaxLeaseTTL: larger TTLs are refused with "etcdserver: too large lease TTL".
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// How long a proposed revoke may stay unapplied before the primary proposes it again.
const REVOKE_RETRY: Duration = Duration::from_secs(3);

struct Lease {
    ttl: i64,
    /// None while this lessor is not primary: only the primary's clock runs.
    expiry: Option<Instant>,
    keys: BTreeSet<Vec<u8>>,
}

#[derive(Default)]
struct Inner {
    leases: HashMap<i64, Lease>,
    /// key → the lease it is attached to.
    items: HashMap<Vec<u8>, i64>,
    primary: bool,
    /// Revokes proposed and not yet applied, with when they were proposed.
    revoking: HashMap<i64, Instant>,
}

pub struct Lessor {
    inner: Mutex<Inner>,
    min_ttl: AtomicI64,
}

impl Default for Lessor {
    fn default() -> Self {
        Lessor::new()
    }
}

impl Lessor {
    pub fn new() -> Lessor {
        Lessor { inner: Mutex::new(Inner::default()), min_ttl: AtomicI64::new(2) }
    }

    /// etcd's minimum TTL: 1.5 election timeouts, rounded up to whole seconds.
    pub fn set_min_ttl_from_election(&self, election_ms: u64) {
        let min = (election_ms * 3 / 2).div_ceil(1000).max(1) as i64;
        self.min_ttl.store(min, Ordering::Relaxed);
    }

    pub fn min_ttl(&self) -> i64 {
        self.min_ttl.load(Ordering::Relaxed)
    }

    /// Creates a lease (the caller checked it does not exist); returns the TTL granted.
    pub fn grant(&self, id: i64, ttl: i64) -> i64 {
        let ttl = ttl.max(self.min_ttl());
        let mut g = self.inner.lock();
        let expiry = g.primary.then(|| deadline(ttl));
        g.leases.insert(id, Lease { ttl, expiry, keys: BTreeSet::new() });
        ttl
    }

    /// Restores a lease read from the backend at start-up (its keys attach as the index is rebuilt).
    pub fn restore(&self, id: i64, ttl: i64) {
        let mut g = self.inner.lock();
        let expiry = g.primary.then(|| deadline(ttl));
        g.leases.insert(id, Lease { ttl, expiry, keys: BTreeSet::new() });
    }

    pub fn exists(&self, id: i64) -> bool {
        self.inner.lock().leases.contains_key(&id)
    }

    /// The keys attached to `id`, in key order.
    pub fn keys(&self, id: i64) -> Option<Vec<Vec<u8>>> {
        self.inner.lock().leases.get(&id).map(|l| l.keys.iter().cloned().collect())
    }

    /// Forgets the lease (its keys were deleted by the caller).
    pub fn revoke(&self, id: i64) {
        let mut g = self.inner.lock();
        if let Some(l) = g.leases.remove(&id) {
            for k in l.keys {
                g.items.remove(&k);
            }
        }
        g.revoking.remove(&id);
    }

    /// `key` was put with `lease` (0 = none): moves it off its old lease and onto the new one.
    pub fn attach(&self, key: &[u8], lease: i64) {
        let mut g = self.inner.lock();
        let old = g.items.get(key).copied();
        if old == Some(lease) {
            return;
        }
        if let Some(old) = old {
            if let Some(l) = g.leases.get_mut(&old) {
                l.keys.remove(key);
            }
            g.items.remove(key);
        }
        if lease != 0 {
            if let Some(l) = g.leases.get_mut(&lease) {
                l.keys.insert(key.to_vec());
                g.items.insert(key.to_vec(), lease);
            }
        }
    }

    /// `key` was deleted.
    pub fn detach(&self, key: &[u8]) {
        let mut g = self.inner.lock();
        if let Some(old) = g.items.remove(key) {
            if let Some(l) = g.leases.get_mut(&old) {
                l.keys.remove(key);
            }
        }
    }

    /// KeepAlive: restarts the lease's clock. None when unknown, expired, or this lessor is not primary.
    pub fn renew(&self, id: i64) -> Option<i64> {
        let mut g = self.inner.lock();
        if !g.primary || g.revoking.contains_key(&id) {
            return None;
        }
        let l = g.leases.get_mut(&id)?;
        let now = Instant::now();
        if l.expiry.is_some_and(|e| e <= now) {
            return None;
        }
        l.expiry = Some(now + Duration::from_secs(l.ttl as u64));
        Some(l.ttl)
    }

    /// (remaining seconds, granted TTL, attached keys); None for an unknown lease.
    pub fn time_to_live(&self, id: i64) -> Option<(i64, i64, Vec<Vec<u8>>)> {
        let g = self.inner.lock();
        let l = g.leases.get(&id)?;
        let remaining = match l.expiry {
            Some(e) => e.saturating_duration_since(Instant::now()).as_secs() as i64,
            None => l.ttl,
        };
        Some((remaining, l.ttl, l.keys.iter().cloned().collect()))
    }

    /// Every lease id, ascending.
    pub fn leases(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.inner.lock().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The primary's expired leases that need a revoke proposal now (each is proposed again only if the
    /// previous proposal was not applied within a while).
    pub fn expired(&self) -> Vec<i64> {
        let mut g = self.inner.lock();
        if !g.primary {
            return Vec::new();
        }
        let now = Instant::now();
        let due: Vec<i64> = g
            .leases
            .iter()
            .filter(|(_, l)| l.expiry.is_some_and(|e| e <= now))
            .map(|(id, _)| *id)
            .filter(|id| g.revoking.get(id).is_none_or(|t| now.duration_since(*t) >= REVOKE_RETRY))
            .collect();
        for id in &due {
            g.revoking.insert(*id, now);
        }
        due
    }

    /// Forgets every lease (a snapshot replaces the store); leadership stays as it is.
    pub fn clear(&self) {
        let mut g = self.inner.lock();
        g.leases.clear();
        g.items.clear();
        g.revoking.clear();
    }

    /// This member became the one whose clock counts: every lease restarts with its full TTL.
    pub fn promote(&self) {
        let mut g = self.inner.lock();
        g.primary = true;
        g.revoking.clear();
        for l in g.leases.values_mut() {
            l.expiry = Some(deadline(l.ttl));
        }
    }

    /// This member is no longer the leader: it stops expiring and renewing leases.
    pub fn demote(&self) {
        let mut g = self.inner.lock();
        g.primary = false;
        g.revoking.clear();
        for l in g.leases.values_mut() {
            l.expiry = None;
        }
    }

    pub fn is_primary(&self) -> bool {
        self.inner.lock().primary
    }

    /// Leases with at least one of `keys` attached (for tests and checks).
    pub fn leases_of(&self, keys: &[&[u8]]) -> HashSet<i64> {
        let g = self.inner.lock();
        keys.iter().filter_map(|k| g.items.get(*k).copied()).collect()
    }
}

fn deadline(ttl: i64) -> Instant {
    Instant::now() + Duration::from_secs(ttl.clamp(0, MAX_LEASE_TTL) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_raises_to_min_and_attach_moves_keys() {
        let l = Lessor::new();
        l.set_min_ttl_from_election(1000);
        assert_eq!(l.min_ttl(), 2);
        l.promote();
        assert_eq!(l.grant(1, 1), 2);
        assert_eq!(l.grant(2, 60), 60);
        l.attach(b"a", 1);
        l.attach(b"b", 1);
        l.attach(b"a", 2);
        assert_eq!(l.keys(1).unwrap(), vec![b"b".to_vec()]);
        assert_eq!(l.keys(2).unwrap(), vec![b"a".to_vec()]);
        l.attach(b"b", 0);
        assert!(l.keys(1).unwrap().is_empty());
        l.detach(b"a");
        assert!(l.keys(2).unwrap().is_empty());
        l.attach(b"c", 99); // unknown lease: nothing attaches
        assert!(l.leases_of(&[b"c"]).is_empty());
    }

    #[test]
    fn only_the_primary_expires_and_renews() {
        let l = Lessor::new();
        l.set_min_ttl_from_election(0);
        l.grant(7, 0);
        assert_eq!(l.renew(7), None, "not primary");
        assert!(l.expired().is_empty());
        l.promote();
        assert_eq!(l.renew(7), Some(1));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(l.expired(), vec![7]);
        assert!(l.expired().is_empty(), "proposed once, not on every poll");
        assert_eq!(l.renew(7), None, "an expired lease cannot be renewed");
        l.revoke(7);
        assert!(!l.exists(7));
        assert_eq!(l.time_to_live(7), None);
    }
}
