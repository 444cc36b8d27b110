//! The v2 store's operation counters (`/v2/stats/store`), in etcd's JSON names.

/// Each pair is (success, fail).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub gets: (u64, u64),
    pub sets: (u64, u64),
    pub deletes: (u64, u64),
    pub updates: (u64, u64),
    pub creates: (u64, u64),
    pub compare_and_swaps: (u64, u64),
    pub compare_and_deletes: (u64, u64),
    pub expires: u64,
}

impl Stats {
    /// Counts `r` as a success or a failure of the operation `pick` selects.
    pub fn count<T, E>(&mut self, r: &Result<T, E>, pick: impl FnOnce(&mut Stats) -> &mut (u64, u64)) {
        let pair = pick(self);
        if r.is_ok() {
            pair.0 += 1;
        } else {
            pair.1 += 1;
        }
    }

    /// etcd's store stats JSON; `watchers` is the hub's count.
    pub fn to_json(&self, watchers: usize) -> String {
        let pairs = [
            ("gets", self.gets),
            ("sets", self.sets),
            ("delete", self.deletes),
            ("update", self.updates),
            ("create", self.creates),
            ("compareAndSwap", self.compare_and_swaps),
            ("compareAndDelete", self.compare_and_deletes),
        ];
        let mut out = String::from("{");
        for (name, (ok, fail)) in pairs {
            out.push_str(&format!("\"{name}Success\":{ok},\"{name}Fail\":{fail},"));
        }
        out.push_str(&format!("\"expireCount\":{},\"watchers\":{watchers}}}", self.expires));
        out
    }
}
