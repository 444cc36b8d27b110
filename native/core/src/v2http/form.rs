//! A request's form as Go's `http.Request.ParseForm` builds it: the URL query, plus a form-encoded body on
//! POST, PUT and PATCH (body values first, so they win), and the value parsers etcd's v2 handlers use.

/// Name/value pairs in order; a name may repeat.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// `query` is the raw query string; `body` is read when `method` carries a form and the content type is
    /// `application/x-www-form-urlencoded`.
    pub fn parse(method: &str, content_type: Option<&str>, query: Option<&str>, body: &[u8]) -> Form {
        let mut pairs = Vec::new();
        let form_body = content_type
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if matches!(method, "POST" | "PUT" | "PATCH") && form_body {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Form(pairs)
    }

    /// Whether `name` was given at all (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// The first value of `name`, or "" (Go's `FormValue`).
    pub fn value(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// etcd's getBool: false when absent; otherwise Go's `strconv.ParseBool` of the first value (`None`
    /// when that fails).
    pub fn bool(&self, name: &str) -> Option<bool> {
        if !self.has(name) {
            return Some(false);
        }
        match self.value(name) {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
            _ => None,
        }
    }

    /// etcd's getUint64: 0 when absent; otherwise a base-10 u64 (`None` for anything else, even empty).
    pub fn uint64(&self, name: &str) -> Option<u64> {
        if !self.has(name) {
            return Some(0);
        }
        let v = self.value(name);
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse().ok()
    }
}

/// Go's `url.PathUnescape` of a request path as `URL.Path` holds it (`%2F` becomes `/`); a bad escape
/// leaves the path as it came.
pub fn unescape_path(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => {
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => return raw.to_string(),
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_values_come_before_the_query() {
        let f = Form::parse("PUT", Some("application/x-www-form-urlencoded"), Some("value=q&ttl="), b"value=a+b%21");
        assert_eq!(f.value("value"), "a b!");
        assert!(f.has("ttl"));
        assert_eq!(f.value("ttl"), "");
        assert_eq!(f.uint64("ttl"), None);
        assert_eq!(f.uint64("prevIndex"), Some(0));
        let get = Form::parse("GET", Some("application/x-www-form-urlencoded"), Some("recursive=true"), b"value=x");
        assert_eq!(get.value("value"), "");
        assert_eq!(get.bool("recursive"), Some(true));
        assert_eq!(get.bool("sorted"), Some(false));
    }

    #[test]
    fn paths_unescape_like_go() {
        assert_eq!(unescape_path("/v2/keys/a%2Fb"), "/v2/keys/a/b");
        assert_eq!(unescape_path("/v2/keys/%zz"), "/v2/keys/%zz");
    }
}
