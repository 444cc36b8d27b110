//! Lease grant and revoke inside a write request: the lease bucket and the attached keys change in the same
//! backend batch as everything else the request does.
use super::{MvccError, TxnWrite};

impl TxnWrite<'_, '_> {
    /// Writes a meta-bucket record in this request's batch (alarms live there).
    pub fn put_meta(&mut self, key: &[u8], value: &[u8]) -> Result<(), MvccError> {
        self.ops.put_meta(key, value);
        Ok(())
    }

    /// Deletes a meta-bucket record in this request's batch.
    pub fn delete_meta(&mut self, key: &[u8]) -> Result<(), MvccError> {
        self.ops.delete_meta(key);
        Ok(())
    }

    /// Records a new lease; returns the TTL granted (raised to the lessor's minimum). The caller checked the
    /// id is free.
    pub fn lease_grant(&mut self, id: i64, ttl: i64) -> Result<i64, MvccError> {
        let store = self.store();
        let ttl = store.lessor.grant(id, ttl);
        self.ops.put_lease(id, ttl);
        Ok(ttl)
    }

    /// Deletes every key attached to `id` (all in this request's revision) and the lease itself. Returns
    /// false when the lease does not exist.
    pub fn lease_revoke(&mut self, id: i64) -> Result<bool, MvccError> {
        let store = self.store();
        let Some(keys) = store.lessor.keys(id) else { return Ok(false) };
        for k in keys {
            self.delete_range(&k, &[])?;
        }
        store.lessor.revoke(id);
        self.ops.delete_lease(id);
        Ok(true)
    }
}
