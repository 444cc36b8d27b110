//! The v2 store on disk: one backend record per node (its path under [`PREFIX`]) and the store index, so
//! the tree survives restarts and travels in snapshots with the rest of the backend. Writes note the paths
//! they touched; after a batch the server turns them into backend puts and deletes ([`take_records`]).
//!
//! A record is `created u64 | modified u64 | expire i64 (0: none) | kind u8 (0 file, 1 dir) | value`, all
//! big-endian; a dir's children are their own records.
use super::node::{Kind, Node};
use super::path::components;
use super::store::Store;

/// The meta-bucket prefix of node records (`v2store/` then the node's path).
pub const PREFIX: &[u8] = b"v2store";
/// The meta-bucket key of the store index.
pub const INDEX_KEY: &[u8] = b"v2store_index";

/// The writes that persist what changed since the last call: for each touched path, its record key and
/// the record (`None`: the node is gone, delete the record).
pub fn take_records(store: &mut Store) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    store.take_changed().into_iter().map(|path| (record_key(&path), store.node(&path).map(record))).collect()
}

/// The meta-bucket key of the node at `path`.
fn record_key(path: &str) -> Vec<u8> {
    [PREFIX, path.as_bytes()].concat()
}

/// The record of `n` (its children are not in it).
fn record(n: &Node) -> Vec<u8> {
    let mut out = Vec::with_capacity(25 + n.value().len());
    out.extend_from_slice(&n.created_index.to_be_bytes());
    out.extend_from_slice(&n.modified_index.to_be_bytes());
    out.extend_from_slice(&n.expire.unwrap_or(0).to_be_bytes());
    out.push(u8::from(n.is_dir()));
    out.extend_from_slice(n.value().as_bytes());
    out
}

fn decode(b: &[u8]) -> Result<Node, String> {
    if b.len() < 25 {
        return Err(format!("v2 store record of {} bytes", b.len()));
    }
    let u = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let expire = u(16) as i64;
    let mut n =
        if b[24] == 1 { Node::dir(0, None) } else { Node::file(String::from_utf8_lossy(&b[25..]).into(), 0, None) };
    (n.created_index, n.modified_index) = (u(0), u(8));
    n.expire = (expire != 0).then_some(expire);
    Ok(n)
}

/// Rebuilds the store from its records (`(key, record)` as [`record_key`] and [`record`] made them) and
/// its index.
pub fn load(records: Vec<(Vec<u8>, Vec<u8>)>, index: u64) -> Result<Store, String> {
    let mut nodes = Vec::with_capacity(records.len());
    for (k, v) in records {
        let path = String::from_utf8(k[PREFIX.len()..].to_vec()).map_err(|e| e.to_string())?;
        nodes.push((components(&path).count(), path, decode(&v)?));
    }
    // Parents before children.
    nodes.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut root = Node::dir(0, None);
    for (_, path, node) in nodes {
        let (parent, name) = path.rsplit_once('/').ok_or_else(|| format!("v2 store record {path:?}"))?;
        let mut cur = &mut root;
        for c in components(parent) {
            cur = cur
                .children_mut()
                .and_then(|ch| ch.get_mut(c))
                .ok_or_else(|| format!("v2 store: no parent of {path}"))?;
        }
        match &mut cur.kind {
            Kind::Dir(children) => children.insert(name.to_string(), node),
            Kind::File(_) => return Err(format!("v2 store: parent of {path} is a file")),
        };
    }
    Ok(Store::restore(root, index))
}
