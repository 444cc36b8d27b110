//! Auth tokens (etcd's `--auth-token`): `simple` tokens, kept by every member once the Authenticate entry is
//! applied and dropped after `--auth-token-ttl` seconds unused; or `jwt` tokens, signed with the configured key
//! and carrying the user, the auth revision they were issued at and an expiry, so any member checks them alone.
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::Mutex;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Tokens issued by this member, by the `--auth-token` flag.
pub enum TokenProvider {
    Simple(SimpleTokens),
    Jwt(Jwt),
}

/// What a valid token says: the user, and the auth revision to check requests against (the current one for a
/// simple token, the one it was issued at for a JWT).
pub struct TokenInfo {
    pub username: String,
    pub revision: Option<u64>,
}

impl TokenProvider {
    /// Parses `--auth-token` (`simple`, or `jwt,pub-key=...,priv-key=...,sign-method=...,ttl=...`) with
    /// `--auth-token-ttl` for simple tokens. Errors read as etcd's.
    pub fn new(spec: &str, simple_ttl: Duration) -> Result<TokenProvider, String> {
        let mut parts = spec.split(',');
        match parts.next().unwrap_or("") {
            "" | "simple" => Ok(TokenProvider::Simple(SimpleTokens::new(simple_ttl))),
            "jwt" => Jwt::new(parts).map(TokenProvider::Jwt),
            other => Err(format!("unknown token type: {other}")),
        }
    }

    /// A new token for `username` at auth revision `revision`; `prefix` and `index` make a simple token
    /// (`<prefix>.<index>`, the same on every member since both come through raft).
    pub fn assign(&self, username: &str, revision: u64, prefix: &str, index: u64) -> Result<String, String> {
        match self {
            TokenProvider::Simple(s) => {
                let token = format!("{prefix}.{index}");
                s.insert(&token, username);
                Ok(token)
            }
            TokenProvider::Jwt(j) => j.sign(username, revision),
        }
    }

    pub fn info(&self, token: &str) -> Option<TokenInfo> {
        match self {
            TokenProvider::Simple(s) => s.get(token).map(|username| TokenInfo { username, revision: None }),
            TokenProvider::Jwt(j) => j.verify(token),
        }
    }

    /// Forgets every token of `username` (deleted, or its password changed).
    pub fn invalidate_user(&self, username: &str) {
        if let TokenProvider::Simple(s) = self {
            s.tokens.lock().retain(|_, (u, _)| u != username);
        }
    }

    /// Forgets every token (auth disabled).
    pub fn clear(&self) {
        if let TokenProvider::Simple(s) = self {
            s.tokens.lock().clear();
        }
    }

    /// The random first part of a simple token, chosen by the member that proposes the Authenticate.
    pub fn prefix() -> String {
        const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut raw = [0u8; 16];
        SystemRandom::new().fill(&mut raw).expect("system random");
        raw.iter().map(|b| LETTERS[*b as usize % LETTERS.len()] as char).collect()
    }
}

/// token → (user, deadline); a use moves the deadline, expired tokens are dropped as the map is touched.
pub struct SimpleTokens {
    ttl: Duration,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl SimpleTokens {
    fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens { ttl, tokens: Mutex::new(HashMap::new()) }
    }

    fn insert(&self, token: &str, username: &str) {
        let now = Instant::now();
        let mut t = self.tokens.lock();
        if t.len() >= 1024 && t.len().is_power_of_two() {
            t.retain(|_, (_, deadline)| *deadline > now);
        }
        t.insert(token.to_string(), (username.to_string(), now + self.ttl));
    }

    fn get(&self, token: &str) -> Option<String> {
        let now = Instant::now();
        let mut t = self.tokens.lock();
        let (user, deadline) = t.get_mut(token)?;
        if *deadline <= now {
            t.remove(token);
            return None;
        }
        *deadline = now + self.ttl;
        Some(user.clone())
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    username: String,
    revision: u64,
    exp: u64,
}

/// JWT signing and checking with the keys of `--auth-token jwt,...`.
pub struct Jwt {
    alg: Algorithm,
    sign: Option<EncodingKey>,
    check: DecodingKey,
    ttl: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs_f64(secs))
}

impl Jwt {
    fn new<'a>(opts: impl Iterator<Item = &'a str>) -> Result<Jwt, String> {
        let (mut public, mut private, mut method, mut ttl) = (None, None, None, Duration::from_secs(300));
        for o in opts {
            let (k, v) = o.split_once('=').ok_or_else(|| format!("invalid auth token option {o:?}"))?;
            match k {
                "pub-key" => public = Some(v.to_string()),
                "priv-key" => private = Some(v.to_string()),
                "sign-method" => method = Some(v.to_string()),
                "ttl" => ttl = parse_duration(v)?,
                _ => return Err(format!("unknown token option {k:?}")),
            }
        }
        let method = method.ok_or("jwt: sign-method is required")?;
        let alg: Algorithm = method.parse().map_err(|_| format!("invalid signing method: {method}"))?;
        let read = |p: &Option<String>| -> Result<Option<Vec<u8>>, String> {
            p.as_ref().map(|p| std::fs::read(p).map_err(|e| format!("open {p}: {e}"))).transpose()
        };
        let (public, private) = (read(&public)?, read(&private)?);
        let bad = |e: jsonwebtoken::errors::Error| format!("jwt: {e}");
        let (sign, check) = match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = private.ok_or("jwt: priv-key is required for HMAC")?;
                (Some(EncodingKey::from_secret(&secret)), DecodingKey::from_secret(&secret))
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let public = public.ok_or("jwt: pub-key is required")?;
                let sign = private.map(|k| EncodingKey::from_ec_pem(&k)).transpose().map_err(bad)?;
                (sign, DecodingKey::from_ec_pem(&public).map_err(bad)?)
            }
            Algorithm::EdDSA => {
                let public = public.ok_or("jwt: pub-key is required")?;
                let sign = private.map(|k| EncodingKey::from_ed_pem(&k)).transpose().map_err(bad)?;
                (sign, DecodingKey::from_ed_pem(&public).map_err(bad)?)
            }
            _ => {
                let public = public.ok_or("jwt: pub-key is required")?;
                let sign = private.map(|k| EncodingKey::from_rsa_pem(&k)).transpose().map_err(bad)?;
                (sign, DecodingKey::from_rsa_pem(&public).map_err(bad)?)
            }
        };
        Ok(Jwt { alg, sign, check, ttl })
    }

    fn sign(&self, username: &str, revision: u64) -> Result<String, String> {
        let key = self.sign.as_ref().ok_or("jwt: this member has no private key to sign tokens with")?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let claims = Claims { username: username.to_string(), revision, exp: (now + self.ttl).as_secs() };
        jsonwebtoken::encode(&Header::new(self.alg), &claims, key).map_err(|e| format!("jwt: {e}"))
    }

    fn verify(&self, token: &str) -> Option<TokenInfo> {
        let mut v = Validation::new(self.alg);
        v.leeway = 0;
        v.required_spec_claims = ["exp".to_string()].into_iter().collect();
        let data = jsonwebtoken::decode::<Claims>(token, &self.check, &v).ok()?;
        Some(TokenInfo { username: data.claims.username, revision: Some(data.claims.revision) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_simple_token_expires_unless_used() {
        let p = TokenProvider::new("simple", Duration::from_millis(200)).unwrap();
        let t = p.assign("alice", 1, &TokenProvider::prefix(), 42).unwrap();
        assert!(t.ends_with(".42") && t.len() == 19);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(120));
            assert_eq!(p.info(&t).unwrap().username, "alice");
        }
        std::thread::sleep(Duration::from_millis(250));
        assert!(p.info(&t).is_none());
    }

    #[test]
    fn durations_parse_as_go_does() {
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5x").is_err());
        assert!(TokenProvider::new("bogus", Duration::from_secs(1)).is_err());
    }
}
