//! TLS for every port (etcd's `pkg/transport`): a listener's configuration from etcd's flags
//! ([`ServerTls`]), dialing peers ([`ClientTls`]), the accept step with its handshake timeout and etcd's
//! allowed-CN/hostname checks ([`accept`]), and the self-signed certificates of `--auto-tls`
//! ([`self_cert`]). rustls with the ring provider; no OpenSSL.
mod tls;

use std::net::IpAddr;
use std::path::Path;

use rustls::pki_types::CertificateDer;
pub use tls::{load_certs, provider, ClientTls, ServerTls, TlsInfo, HANDSHAKE_TIMEOUT};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::raftnode::logger::zap_log;

/// A verified TLS connection and the common name of the client certificate, if one was presented.
pub struct Accepted {
    pub stream: TlsStream<TcpStream>,
    pub common_name: Option<String>,
}

/// The TLS handshake on an accepted connection, bounded by [`HANDSHAKE_TIMEOUT`], then etcd's certificate
/// checks. `None` (logged, as etcd's listener does) when any of it fails: the connection is dropped.
pub async fn accept(tls: &ServerTls, acceptor: &tokio_rustls::TlsAcceptor, tcp: TcpStream) -> Option<Accepted> {
    let remote = tcp.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            zap_log(
                "warn",
                "embed/config_logging.go",
                "rejected connection",
                &[("remote-addr", remote), ("error", e.to_string())],
            );
            return None;
        }
        Err(_) => return None,
    };
    let certs = stream.get_ref().1.peer_certificates();
    if let Err(e) = tls.check_peer(certs) {
        zap_log("warn", "transport/listener_tls.go", "rejected connection", &[("remote-addr", remote), ("error", e)]);
        return None;
    }
    let common_name = certs.and_then(|c| c.first()).and_then(|leaf| cert_names(leaf).ok()).and_then(|(cn, _)| cn);
    Some(Accepted { stream, common_name })
}

/// The subject's common name and the subject-alternative names (DNS names and IPs as text) of `der`.
pub fn cert_names(der: &CertificateDer<'_>) -> Result<(Option<String>, Vec<String>), String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| format!("x509: {e}"))?;
    // Go's pkix.Name keeps the last CN when a subject has several.
    let cn = cert.subject().iter_common_name().last().and_then(|a| a.as_str().ok()).map(str::to_string);
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names.push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()).to_string()),
                    16 => names.push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()).to_string()),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Ok((cn, names))
}

/// Go's `Certificate.VerifyHostname` over the SANs: an IP matches an IP SAN exactly; a name matches a DNS SAN
/// case-insensitively, `*.` matching one leftmost label.
pub fn matches_hostname(names: &[String], host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return names.iter().any(|n| n.parse::<IpAddr>().is_ok_and(|x| x == ip));
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        match n.strip_prefix("*.") {
            Some(rest) => host.split_once('.').is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
            None => n == host,
        }
    })
}

/// etcd's `transport.SelfCert`: `cert.pem` and `key.pem` in `dir` for `hosts` (host or host:port; IPs become
/// IP SANs), ECDSA P-256, valid `validity_days`; files already there are kept (a restart reuses them).
/// Returns the two paths.
pub fn self_cert(dir: &Path, hosts: &[String], validity_days: i64) -> Result<(String, String), String> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let as_string = |p: &Path| p.to_string_lossy().to_string();
    if cert_path.exists() && key_path.exists() {
        return Ok((as_string(&cert_path), as_string(&key_path)));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot generate cert: {e}"))?;
    let mut sans: Vec<String> = Vec::new();
    for h in hosts {
        let host = match h.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) && !host.ends_with(':') => host,
            _ => h.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        if !host.is_empty() && !sans.contains(&host) {
            sans.push(host);
        }
    }
    let err = |e: rcgen::Error| format!("cannot generate cert: {e}");
    let mut params = rcgen::CertificateParams::new(sans).map_err(err)?;
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "etcd");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(validity_days);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment, rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_private(&cert_path, cert.pem().as_bytes())?;
    zap_log(
        "info",
        "transport/listener.go",
        "automatically generated certificates",
        &[("cert-file", as_string(&cert_path))],
    );
    Ok((as_string(&cert_path), as_string(&key_path)))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot generate cert: {e}"))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| format!("cannot generate cert: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_match_as_go_verifies_them() {
        let names = vec!["*.example.com".to_string(), "localhost".to_string(), "127.0.0.1".to_string()];
        assert!(matches_hostname(&names, "a.example.com"));
        assert!(!matches_hostname(&names, "a.b.example.com"));
        assert!(!matches_hostname(&names, "example.com"));
        assert!(matches_hostname(&names, "LOCALHOST"));
        assert!(matches_hostname(&names, "127.0.0.1"));
        assert!(!matches_hostname(&names, "127.0.0.2"));
    }

    #[test]
    fn a_self_cert_names_its_hosts_and_is_kept_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["127.0.0.1:2379".to_string(), "localhost:2380".to_string(), "[::1]:2379".to_string()];
        let (cert, key) = self_cert(dir.path(), &hosts, 365).unwrap();
        let der = load_certs(&cert).unwrap().remove(0);
        let (_, names) = cert_names(&der).unwrap();
        assert_eq!(names, vec!["127.0.0.1", "localhost", "::1"]);
        let before = std::fs::read(&key).unwrap();
        self_cert(dir.path(), &hosts, 365).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), before);
        ServerTls::new(&TlsInfo { cert_file: cert, key_file: key, ..Default::default() }, &["h2"]).unwrap();
    }

    #[test]
    fn unknown_cipher_suites_are_refused_with_etcds_message() {
        let e = provider(&["TLS_FOO".into()]).err().unwrap();
        assert_eq!(e, "unexpected TLS cipher suite \"TLS_FOO\"");
        assert!(provider(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()]).is_err());
        let p = provider(&["TLS_RSA_WITH_AES_128_CBC_SHA".into(), "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into()]);
        assert_eq!(p.unwrap().cipher_suites.len(), 4); // three TLS 1.3 suites and the one asked for
    }
}
