//! What the v2 store answers with: an [`Event`] (action, node, previous node) whose nodes are
//! [`NodeExtern`]s, the JSON shape of etcd's v2 API.
use super::json::{push_str, rfc3339_nano};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Get,
    Set,
    Create,
    Update,
    Delete,
    CompareAndSwap,
    CompareAndDelete,
    Expire,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::CompareAndSwap => "compareAndSwap",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }
}

/// A node as clients see it. `key` is empty for the root; `value` is `None` for a dir (and for the node of
/// a delete or expire event); `nodes` is `None` unless the dir's children were listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeExtern {
    pub key: String,
    pub value: Option<String>,
    pub dir: bool,
    /// Unix nanoseconds; `None` for a permanent node.
    pub expiration: Option<i64>,
    /// Seconds left, rounded up, when the node was rendered.
    pub ttl: i64,
    pub nodes: Option<Vec<NodeExtern>>,
    pub modified_index: u64,
    pub created_index: u64,
}

impl NodeExtern {
    /// etcd's field order and `omitempty` rules (an empty value is still written; zero indices are not).
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        let mut sep = "";
        let mut field = |out: &mut String, name: &str| {
            out.push_str(sep);
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            sep = ",";
        };
        if !self.key.is_empty() {
            field(out, "key");
            push_str(out, &self.key);
        }
        if let Some(v) = &self.value {
            field(out, "value");
            push_str(out, v);
        }
        if self.dir {
            field(out, "dir");
            out.push_str("true");
        }
        if let Some(e) = self.expiration {
            field(out, "expiration");
            push_str(out, &rfc3339_nano(e));
        }
        if self.ttl != 0 {
            field(out, "ttl");
            out.push_str(&self.ttl.to_string());
        }
        if let Some(nodes) = self.nodes.as_ref().filter(|n| !n.is_empty()) {
            field(out, "nodes");
            out.push('[');
            for (i, n) in nodes.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                n.write_json(out);
            }
            out.push(']');
        }
        if self.modified_index != 0 {
            field(out, "modifiedIndex");
            out.push_str(&self.modified_index.to_string());
        }
        if self.created_index != 0 {
            field(out, "createdIndex");
            out.push_str(&self.created_index.to_string());
        }
        out.push('}');
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub action: Action,
    pub node: NodeExtern,
    pub prev_node: Option<NodeExtern>,
    /// The store's index when the event was made (for a watch: when the watch began); `X-Etcd-Index`.
    pub etcd_index: u64,
    /// A TTL refresh: kept in the history, never sent to watchers.
    pub refresh: bool,
}

impl Event {
    pub(crate) fn new(action: Action, key: &str, modified_index: u64, created_index: u64) -> Event {
        Event {
            action,
            node: NodeExtern { key: key.to_string(), modified_index, created_index, ..Default::default() },
            prev_node: None,
            etcd_index: 0,
            refresh: false,
        }
    }

    /// The index the event happened at (its node's modifiedIndex).
    pub fn index(&self) -> u64 {
        self.node.modified_index
    }

    /// `{"action":...,"node":{...},"prevNode":{...}}`, without the trailing newline etcd's encoder adds.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"action\":");
        push_str(&mut out, self.action.as_str());
        out.push_str(",\"node\":");
        self.node.write_json(&mut out);
        if let Some(p) = &self.prev_node {
            out.push_str(",\"prevNode\":");
            p.write_json(&mut out);
        }
        out.push('}');
        out
    }
}
