//! v2 key paths: Go's `path.Clean(path.Join("/", p))`, and which keys are hidden (`_` names).

/// `p` made absolute and clean: no empty, `.` or `..` components, no trailing slash; the root is `/`.
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = String::with_capacity(p.len() + 1);
    for c in &parts {
        out.push('/');
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// `path.Join(dir, name)` for a clean `dir`.
pub fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The components of a clean path (none for the root).
pub fn components(p: &str) -> impl Iterator<Item = &str> {
    p.split('/').filter(|c| !c.is_empty())
}

/// A node is hidden when its name starts with `_`: listings skip it, a direct GET still reads it.
pub fn is_hidden_name(name: &str) -> bool {
    name.starts_with('_')
}

/// Whether `key` is hidden from a recursive watcher of `watch`: a component below `watch` starts with `_`.
/// A watch path longer than the key (a watcher under a deleted dir) sees the event.
pub fn is_hidden(watch: &str, key: &str) -> bool {
    if watch.len() > key.len() {
        return false;
    }
    clean(&format!("/{}", &key[watch.len()..])).contains("/_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (p, want) in
            [("", "/"), ("/", "/"), ("a", "/a"), ("/a//b/", "/a/b"), ("/a/./b/../c", "/a/c"), ("/../a", "/a")]
        {
            assert_eq!(clean(p), want, "{p:?}");
        }
    }

    #[test]
    fn hidden_below_the_watched_key() {
        assert!(is_hidden("/", "/_a"));
        assert!(is_hidden("/a", "/a/_b/c"));
        assert!(!is_hidden("/a", "/a/b"));
        assert!(!is_hidden("/_a", "/_a/b"));
        assert!(!is_hidden("/a/b/c", "/a"));
    }
}
