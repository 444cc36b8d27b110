//! A node of the v2 tree: a file with a value or a dir of named children, with the indices that created
//! and last modified it and an optional expiry.
use std::collections::BTreeMap;

use super::event::NodeExtern;
use super::path::{is_hidden_name, join};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File(String),
    Dir(BTreeMap<String, Node>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub created_index: u64,
    pub modified_index: u64,
    /// Unix nanoseconds; `None` is permanent.
    pub expire: Option<i64>,
    pub kind: Kind,
}

/// etcd's `CompareMatch`..`CompareNotMatch`: which of prevValue/prevIndex failed.
pub enum Compare {
    Match,
    IndexNotMatch,
    ValueNotMatch,
    NotMatch,
}

impl Node {
    pub fn file(value: String, index: u64, expire: Option<i64>) -> Node {
        Node { created_index: index, modified_index: index, expire, kind: Kind::File(value) }
    }

    pub fn dir(index: u64, expire: Option<i64>) -> Node {
        Node { created_index: index, modified_index: index, expire, kind: Kind::Dir(BTreeMap::new()) }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    pub fn value(&self) -> &str {
        match &self.kind {
            Kind::File(v) => v,
            Kind::Dir(_) => "",
        }
    }

    pub fn children(&self) -> Option<&BTreeMap<String, Node>> {
        match &self.kind {
            Kind::Dir(c) => Some(c),
            Kind::File(_) => None,
        }
    }

    pub fn children_mut(&mut self) -> Option<&mut BTreeMap<String, Node>> {
        match &mut self.kind {
            Kind::Dir(c) => Some(c),
            Kind::File(_) => None,
        }
    }

    /// Both given conditions hold (an empty prevValue and a zero prevIndex are not conditions).
    pub fn compare(&self, prev_value: &str, prev_index: u64) -> Compare {
        let index_ok = prev_index == 0 || self.modified_index == prev_index;
        let value_ok = prev_value.is_empty() || self.value() == prev_value;
        match (value_ok, index_ok) {
            (true, true) => Compare::Match,
            (false, true) => Compare::ValueNotMatch,
            (true, false) => Compare::IndexNotMatch,
            (false, false) => Compare::NotMatch,
        }
    }

    /// `(expiration, ttl)`: the seconds left rounded up, as of `now` (unix nanoseconds).
    pub fn expiration_and_ttl(&self, now: i64) -> (Option<i64>, i64) {
        match self.expire {
            None => (None, 0),
            Some(e) => {
                let left = e - now;
                let ttl = left / 1_000_000_000 + i64::from(left % 1_000_000_000 > 0);
                (Some(e), ttl)
            }
        }
    }

    /// The node at `path` as clients see it; a dir lists its visible children when `recursive`, or when
    /// `list` (a GET lists one level even without recursive). Children come out sorted by name: the tree is
    /// ordered. etcd's order is its map's (random) unless the client asks `sorted=true`, so ours is one of
    /// the orders etcd may give.
    pub fn repr(&self, path: &str, list: bool, recursive: bool, now: i64) -> NodeExtern {
        let (expiration, ttl) = self.expiration_and_ttl(now);
        let mut n = NodeExtern {
            key: if path == "/" { String::new() } else { path.to_string() },
            expiration,
            ttl,
            modified_index: self.modified_index,
            created_index: self.created_index,
            ..Default::default()
        };
        match &self.kind {
            Kind::File(v) => n.value = Some(v.clone()),
            Kind::Dir(children) => {
                n.dir = true;
                if list || recursive {
                    let nodes = children
                        .iter()
                        .filter(|(name, _)| !is_hidden_name(name))
                        .map(|(name, c)| c.repr(&join(path, name), false, recursive, now))
                        .collect();
                    n.nodes = Some(nodes);
                }
            }
        }
        n
    }

    /// Every path in this subtree that has an expiry, with it (for the TTL index).
    pub fn expiring(&self, path: &str, out: &mut Vec<(i64, String)>) {
        if let Some(e) = self.expire {
            out.push((e, path.to_string()));
        }
        if let Kind::Dir(children) = &self.kind {
            for (name, c) in children {
                c.expiring(&join(path, name), out);
            }
        }
    }

    /// Every path in this subtree, children before their dir (the order etcd notifies a deletion in).
    pub fn paths_bottom_up(&self, path: &str, out: &mut Vec<String>) {
        if let Kind::Dir(children) = &self.kind {
            for (name, c) in children {
                c.paths_bottom_up(&join(path, name), out);
            }
        }
        out.push(path.to_string());
    }
}
