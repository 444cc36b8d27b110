//! Building rustls configurations from etcd's TLS flags: [`TlsInfo`] → [`ServerTls`] (a listener's side) and
//! [`ClientTls`] (dialing peers). Files are read at build time, so a bad certificate stops the start with
//! Go's message ("open c.pem: no such file or directory", "tls: private key does not match public key"); after
//! that the certificate and key are re-read whenever their files change, checked per handshake as etcd does,
//! so a rotation needs no restart (a rotation that fails to load keeps the previous pair and logs why).
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite,
};

use crate::raftnode::logger::zap_log;

/// One side's TLS flags (`--cert-file ...` for clients, `--peer-cert-file ...` for peers).
#[derive(Clone, Debug, Default)]
pub struct TlsInfo {
    pub cert_file: String,
    pub key_file: String,
    pub trusted_ca_file: String,
    pub client_cert_auth: bool,
    pub crl_file: String,
    /// `--peer-cert-allowed-cn`: the common name a connecting certificate must carry.
    pub allowed_cn: String,
    /// `--client-cert-allowed-hostname` / `--peer-cert-allowed-hostname`: a name the certificate must be valid for.
    pub allowed_hostname: String,
    /// etcd's (Go's) names; empty is the library's defaults.
    pub cipher_suites: Vec<String>,
    /// Dialing only: accept any server certificate (auto-TLS peers, whose certificates are self-signed).
    pub insecure_skip_verify: bool,
}

/// How long a TLS handshake may take on an accepted connection.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The suites rustls implements, by Go's names (a TLS 1.2 suite; TLS 1.3's are always on, as in Go).
const SUITES: &[(&str, SupportedCipherSuite)] = &[
    ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
    ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
    ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", ring::cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
];

/// Suites Go knows and etcd accepts but rustls does not implement (CBC, RC4, 3DES, static RSA): skipped with
/// a warning. Go itself refuses a list with none of the AES-128-GCM suites HTTP/2 needs.
const UNSUPPORTED_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The crypto provider with `names` as its TLS 1.2 suites (all of rustls's when empty), TLS 1.3's kept.
pub fn provider(names: &[String]) -> Result<Arc<CryptoProvider>, String> {
    // Deprecated for lacking post-quantum key exchange, which only the aws-lc-rs provider has (a C and cmake
    // build); etcd 3.4's Go has none either.
    #[allow(deprecated)]
    let mut p = ring::default_provider();
    if names.is_empty() {
        return Ok(Arc::new(p));
    }
    let mut chosen: Vec<SupportedCipherSuite> =
        p.cipher_suites.iter().filter(|s| matches!(s, SupportedCipherSuite::Tls13(_))).copied().collect();
    let mut tls12 = 0;
    for name in names {
        if let Some((_, s)) = SUITES.iter().find(|(n, _)| n == name) {
            chosen.push(*s);
            tls12 += 1;
        } else if UNSUPPORTED_SUITES.contains(&name.as_str()) {
            zap_log(
                "warn",
                "transport/tls.go",
                "cipher suite not supported by rustls; skipped",
                &[("cipher-suite", name.clone())],
            );
        } else {
            return Err(format!("unexpected TLS cipher suite {name:?}"));
        }
    }
    if tls12 == 0 {
        return Err("http2: TLSConfig.CipherSuites is missing an HTTP/2-required AES_128_GCM_SHA256 cipher (need at \
                    least one of TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)"
            .into());
    }
    p.cipher_suites = chosen;
    Ok(Arc::new(p))
}

/// Go's `os.Open` error text for `path`.
fn open_error(path: &str, e: &std::io::Error) -> String {
    let why = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    format!("open {path}: {why}")
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| open_error(path, &e))
}

/// Every certificate in PEM file `path`.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err("tls: failed to find any PEM data in certificate input".into());
    }
    Ok(certs)
}

fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| "tls: failed to find any PEM data in key input".to_string())
}

/// The certificate chain and key of `cert`/`key`, checked to belong together.
fn load_pair(cert: &str, key: &str, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let chain = load_certs(cert)?;
    let key = load_key(key)?;
    let ck = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => "tls: private key does not match public key".to_string(),
        e => format!("tls: failed to parse private key: {e}"),
    })?;
    Ok(Arc::new(ck))
}

fn roots(path: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for c in load_certs(path)? {
        store.add(c).map_err(|e| format!("failed to load CA certificate {path}: {e}"))?;
    }
    Ok(store)
}

/// The system's CAs (Debian's bundle), for dialing with no `--peer-trusted-ca-file`, as Go does.
fn system_roots() -> RootCertStore {
    let mut store = RootCertStore::empty();
    if let Ok(bytes) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") {
        for c in CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok) {
            let _ = store.add(c);
        }
    }
    store
}

fn crls(path: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = read(path)?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    // Go's x509.ParseCRL takes PEM or DER.
    Ok(if pem.is_empty() { vec![CertificateRevocationListDer::from(bytes)] } else { pem })
}

/// A value built from files and built again when any of them changes (checked at each use, as etcd reads
/// its TLS files per handshake). A rebuild that fails keeps the old value until the files change again
/// (a rotation caught between writing two files), and says why once.
#[derive(Debug)]
struct Watched<T> {
    files: Vec<String>,
    current: Mutex<(Vec<FileStamp>, T)>,
}

impl<T: Clone> Watched<T> {
    fn new(files: &[&str], value: T) -> Watched<T> {
        let files: Vec<String> = files.iter().map(|f| f.to_string()).collect();
        let st = files.iter().map(|f| file_stamp(f)).collect();
        Watched { files, current: Mutex::new((st, value)) }
    }

    fn get(&self, what: &str, build: impl FnOnce() -> Result<T, String>) -> T {
        let st: Vec<FileStamp> = self.files.iter().map(|f| file_stamp(f)).collect();
        let mut cur = self.current.lock();
        if cur.0 != st {
            match build() {
                Ok(v) => cur.1 = v,
                Err(e) => {
                    zap_log("warn", "transport/listener.go", &format!("failed to reload {what}"), &[("error", e)])
                }
            }
            cur.0 = st;
        }
        cur.1.clone()
    }
}

/// The certificate and key, for serving and for dialing.
#[derive(Debug)]
struct Reloading {
    cert_file: String,
    key_file: String,
    provider: Arc<CryptoProvider>,
    pair: Watched<Arc<CertifiedKey>>,
}

impl Reloading {
    fn new(cert_file: &str, key_file: &str, provider: Arc<CryptoProvider>) -> Result<Reloading, String> {
        let pair = Watched::new(&[cert_file, key_file], load_pair(cert_file, key_file, &provider)?);
        Ok(Reloading { cert_file: cert_file.into(), key_file: key_file.into(), provider, pair })
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.pair.get("certificate", || load_pair(&self.cert_file, &self.key_file, &self.provider))
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

impl rustls::client::ResolvesClientCert for Reloading {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn client_verifier(
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    crl_file: &str,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut v = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone());
    if !crl_file.is_empty() {
        v = v.with_crls(crls(crl_file)?).allow_unknown_revocation_status();
    }
    v.build().map_err(|e| e.to_string())
}

/// Modification time, size and inode of a file: a rewrite in place or a rename over it changes one.
type FileStamp = (Option<SystemTime>, u64, u64);

fn file_stamp(path: &str) -> FileStamp {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or((None, 0, 0), |m| (m.modified().ok(), m.len(), m.ino()))
}

/// Client-certificate checks whose revocation list is read again when its file changes (etcd reads
/// `--client-crl-file` for each connection): a revoked certificate is refused without a restart.
#[derive(Debug)]
struct CrlReloading {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    crl_file: String,
    /// The verifier built at start: its CA hints and signature checks never change.
    first: Arc<dyn ClientCertVerifier>,
    current: Watched<Arc<dyn ClientCertVerifier>>,
}

impl ClientCertVerifier for CrlReloading {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.first.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verifier = self.current.get("CRL", || client_verifier(&self.roots, &self.provider, &self.crl_file));
        verifier.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.first.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.first.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.first.supported_verify_schemes()
    }
}

/// A listener's TLS: the rustls configuration plus the checks etcd makes on a verified client certificate.
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    pub allowed_cn: String,
    pub allowed_hostname: String,
}

impl ServerTls {
    /// Loads `info`'s files; `alpn` lists the protocols offered (`h2`, `http/1.1` on the client port).
    pub fn new(info: &TlsInfo, alpn: &[&str]) -> Result<ServerTls, String> {
        if info.cert_file.is_empty() || info.key_file.is_empty() {
            return Err("KeyFile and CertFile are not presented".into());
        }
        let provider = provider(&info.cipher_suites)?;
        let resolver = Arc::new(Reloading::new(&info.cert_file, &info.key_file, provider.clone())?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| e.to_string())?;
        let builder = if info.client_cert_auth {
            if info.trusted_ca_file.is_empty() {
                return Err("client certificate authentication needs a trusted CA file".into());
            }
            let roots = Arc::new(roots(&info.trusted_ca_file)?);
            let verifier = client_verifier(&roots, &provider, &info.crl_file)?;
            if info.crl_file.is_empty() {
                builder.with_client_cert_verifier(verifier)
            } else {
                let current = Watched::new(&[info.crl_file.as_str()], verifier.clone());
                let reloading =
                    CrlReloading { roots, provider, crl_file: info.crl_file.clone(), first: verifier, current };
                builder.with_client_cert_verifier(Arc::new(reloading))
            }
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_cert_resolver(resolver);
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        Ok(ServerTls {
            config: Arc::new(config),
            allowed_cn: info.allowed_cn.clone(),
            allowed_hostname: info.allowed_hostname.clone(),
        })
    }

    /// etcd's checks after the handshake: the allowed CN and hostname of the client's certificate, when set.
    pub fn check_peer(&self, certs: Option<&[CertificateDer<'_>]>) -> Result<(), String> {
        if self.allowed_cn.is_empty() && self.allowed_hostname.is_empty() {
            return Ok(());
        }
        let leaf = certs.and_then(|c| c.first()).ok_or("no client certificate")?;
        let (cn, names) = super::cert_names(leaf)?;
        if !self.allowed_cn.is_empty() && cn.as_deref() != Some(self.allowed_cn.as_str()) {
            return Err(format!(
                "CommonName authentication failed (expected {:?}, got {:?})",
                self.allowed_cn,
                cn.unwrap_or_default()
            ));
        }
        if !self.allowed_hostname.is_empty() && !super::matches_hostname(&names, &self.allowed_hostname) {
            return Err(format!("client certificate is not valid for host {:?}", self.allowed_hostname));
        }
        Ok(())
    }
}

/// TLS for dialing peers: the CA to verify them by, and this member's certificate to present.
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
}

impl ClientTls {
    pub fn new(info: &TlsInfo) -> Result<ClientTls, String> {
        let provider = provider(&info.cipher_suites)?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(|e| e.to_string())?;
        let builder = if info.insecure_skip_verify {
            let algs = provider.signature_verification_algorithms;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(SkipVerify(algs)))
        } else if info.trusted_ca_file.is_empty() {
            builder.with_root_certificates(system_roots())
        } else {
            builder.with_root_certificates(roots(&info.trusted_ca_file)?)
        };
        let config = if info.cert_file.is_empty() {
            builder.with_no_client_auth()
        } else {
            builder.with_client_cert_resolver(Arc::new(Reloading::new(&info.cert_file, &info.key_file, provider)?))
        };
        Ok(ClientTls { config: Arc::new(config) })
    }

    /// The name to verify a peer at `host` by (an IP address or a DNS name).
    pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_string()).map_err(|e| format!("invalid peer host {host:?}: {e}"))
    }
}

/// Go's `InsecureSkipVerify`: any certificate is accepted, the handshake's signatures are still checked.
#[derive(Debug)]
struct SkipVerify(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
