//! A user's key permissions merged over its roles (etcd's `unifiedRangePermissions`), and the two checks made
//! on them: a single key (`range_end` empty) must lie in some granted range; a range `[key, range_end)` (with
//! `"\0"` meaning "to the end of the keyspace") must be covered by the union of granted ranges.
use crate::pb::authpb::{permission::Type as PermType, Permission, Role};

/// A half-open key range; `end == None` is unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Span {
    begin: Vec<u8>,
    end: Option<Vec<u8>>,
}

/// The key after `key` in byte order: a single key as a range.
fn next_key(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

impl Span {
    /// etcd's convention: no end is the one key, `"\0"` is everything from `key` on.
    fn of(key: &[u8], range_end: &[u8]) -> Span {
        match range_end {
            [] => Span { begin: key.to_vec(), end: Some(next_key(key)) },
            [0] => Span { begin: key.to_vec(), end: None },
            end => Span { begin: key.to_vec(), end: Some(end.to_vec()) },
        }
    }

    /// Whether `self` ends at or after `at` (an unbounded end is after everything).
    fn reaches(&self, at: &Option<Vec<u8>>) -> bool {
        match (&self.end, at) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(e), Some(a)) => e >= a,
        }
    }
}

/// Disjoint, sorted ranges (overlapping or touching ranges merged).
#[derive(Clone, Debug, Default)]
struct Union(Vec<Span>);

impl Union {
    fn from(mut spans: Vec<Span>) -> Union {
        spans.sort_by(|a, b| a.begin.cmp(&b.begin));
        let mut out: Vec<Span> = Vec::new();
        for s in spans {
            if let Some(last) = out.last_mut() {
                if last.reaches(&Some(s.begin.clone())) {
                    if !last.reaches(&s.end) {
                        last.end = s.end;
                    }
                    continue;
                }
            }
            out.push(s);
        }
        Union(out)
    }

    /// Whether every key of `want` lies in one of the ranges.
    fn covers(&self, want: &Span) -> bool {
        // The last range starting at or before `want`'s begin is the only candidate (ranges are disjoint).
        let i = self.0.partition_point(|s| s.begin <= want.begin);
        i > 0 && self.0[i - 1].reaches(&want.end) && self.0[i - 1].reaches(&Some(next_key(&want.begin)))
    }
}

/// What one user may read and write.
#[derive(Clone, Debug, Default)]
pub struct Perms {
    read: Union,
    write: Union,
}

impl Perms {
    /// The union of `roles`' permissions.
    pub fn merge<'a>(roles: impl Iterator<Item = &'a Role>) -> Perms {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for p in roles.flat_map(|r| r.key_permission.iter()) {
            let span = Span::of(&p.key, &p.range_end);
            match PermType::try_from(p.perm_type).unwrap_or(PermType::Read) {
                PermType::Read => read.push(span),
                PermType::Write => write.push(span),
                PermType::Readwrite => {
                    read.push(span.clone());
                    write.push(span);
                }
            }
        }
        Perms { read: Union::from(read), write: Union::from(write) }
    }

    /// Whether `[key, range_end)` (etcd's conventions) may be accessed as `want` (READ or WRITE).
    pub fn allows(&self, key: &[u8], range_end: &[u8], want: PermType) -> bool {
        let span = Span::of(key, range_end);
        match want {
            PermType::Read => self.read.covers(&span),
            PermType::Write => self.write.covers(&span),
            PermType::Readwrite => self.read.covers(&span) && self.write.covers(&span),
        }
    }
}

/// Whether two permissions name the same range (RoleRevokePermission's match).
pub fn same_range(p: &Permission, key: &[u8], range_end: &[u8]) -> bool {
    p.key == key && p.range_end == range_end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(perms: &[(PermType, &str, &str)]) -> Role {
        Role {
            name: b"r".to_vec(),
            key_permission: perms
                .iter()
                .map(|(t, k, e)| Permission {
                    perm_type: *t as i32,
                    key: k.as_bytes().to_vec(),
                    range_end: e.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_prefix_covers_its_keys_and_ranges_inside_it_only() {
        let p = Perms::merge([role(&[(PermType::Readwrite, "a/", "a0")])].iter());
        assert!(p.allows(b"a/x", b"", PermType::Read));
        assert!(p.allows(b"a/", b"a0", PermType::Write));
        assert!(p.allows(b"a/b", b"a/c", PermType::Read));
        assert!(!p.allows(b"a", b"", PermType::Read));
        assert!(!p.allows(b"a/", b"b", PermType::Read));
        // A from-key request ("\0") reaches past any bounded grant (GHSA-xg4h-6gfc-h4m8's watch).
        assert!(!p.allows(b"a/", b"\0", PermType::Read));
    }

    #[test]
    fn touching_and_overlapping_grants_merge() {
        let p = Perms::merge(
            [role(&[(PermType::Read, "a", "c"), (PermType::Read, "c", "e")]), role(&[(PermType::Read, "d", "\0")])]
                .iter(),
        );
        assert!(p.allows(b"a", b"\0", PermType::Read));
        assert!(!p.allows(b"a", b"\0", PermType::Write));
        assert!(!p.allows(b"0", b"b", PermType::Read));
    }

    #[test]
    fn a_single_key_grant_is_that_key() {
        let p = Perms::merge([role(&[(PermType::Write, "k", "")])].iter());
        assert!(p.allows(b"k", b"", PermType::Write));
        assert!(p.allows(b"k", b"k\0", PermType::Write));
        assert!(!p.allows(b"k", b"l", PermType::Write));
        assert!(!p.allows(b"k0", b"", PermType::Write));
        assert!(!p.allows(b"k", b"", PermType::Read));
    }
}
