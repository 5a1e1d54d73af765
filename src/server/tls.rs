//! HTTPS with rustls: the certificate and key from `http.tls`, re-read
//! when the files change (a pair that does not load is refused with a log
//! line and the old one is served on), ALPN `h2` + `http/1.1`, and client
//! certificates checked against `http.tls.clientcas` (re-read too when one
//! of those files changes, for connections accepted from then on).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::api::Live;
use crate::config::{Http, MinTls};

/// How often the certificate, key and client CA files are looked at.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);

/// The TLS side of the server: the rustls configuration (replaced when the
/// client CAs change) and the certificate it serves (swapped on reload).
pub struct Tls {
    config: Arc<Live<ServerConfig>>,
    cert: Arc<Current>,
    cert_path: PathBuf,
    key_path: PathBuf,
    /// `http` as started: what a new configuration is built from.
    http: Http,
}

/// The certificate and key being served.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|c| c.clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its private key, checking that they match.
fn load_pair(cert_path: &Path, key_path: &Path) -> anyhow::Result<CertifiedKey> {
    let certs = read_certs(cert_path)
        .with_context(|| format!("http.tls.certificate {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        anyhow!(
            "http.tls.key {}: no PEM private key could be read: {e}",
            key_path.display()
        )
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow!("http.tls.key {}: {e}", key_path.display()))?;
    let pair = CertifiedKey::new(certs, signing);
    pair.keys_match().map_err(|e| {
        anyhow!(
            "http.tls.key {} does not belong to http.tls.certificate {}: {e}",
            key_path.display(),
            cert_path.display()
        )
    })?;
    Ok(pair)
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("cannot be read: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(anyhow!("holds no PEM certificate"));
    }
    Ok(certs)
}

impl Tls {
    /// The TLS configuration of `http`, if it has one; errors name the key.
    pub fn from_config(http: &Http) -> anyhow::Result<Option<Tls>> {
        let (Some(cert_path), Some(key_path)) = (&http.tls.certificate, &http.tls.key) else {
            return Ok(None);
        };
        let pair = load_pair(cert_path, key_path)?;
        let cert = Arc::new(Current(RwLock::new(Arc::new(pair))));
        let config = server_config(http, cert.clone())?;
        Ok(Some(Tls {
            config: Arc::new(Live::new(config)),
            cert,
            cert_path: cert_path.clone(),
            key_path: key_path.clone(),
            http: http.clone(),
        }))
    }

    /// The acceptor for a new connection, with the client CAs as last read.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.get())
    }

    /// Watches the certificate and key files and the client CA files
    /// (every [`RELOAD_POLL`]): serves a new pair once both load and match,
    /// and checks client certificates against the CA files as they are
    /// once they all load; what does not load is logged and the old one stays.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let (cert, cert_path, key_path) = (
            self.cert.clone(),
            self.cert_path.clone(),
            self.key_path.clone(),
        );
        let (config, http) = (self.config.clone(), self.http.clone());
        let cas = |http: &Http| {
            http.tls
                .clientcas
                .iter()
                .map(|p| stamp(p))
                .collect::<Vec<_>>()
        };
        tokio::spawn(async move {
            let mut seen = (stamp(&cert_path), stamp(&key_path));
            let mut seen_cas = cas(&http);
            loop {
                tokio::time::sleep(RELOAD_POLL).await;
                let now_cas = cas(&http);
                if now_cas != seen_cas {
                    seen_cas = now_cas;
                    let (h, c) = (http.clone(), cert.clone());
                    match tokio::task::spawn_blocking(move || server_config(&h, c)).await {
                        Ok(Ok(new)) => {
                            config.set(new);
                            tracing::info!("TLS client CAs reloaded (http.tls.clientcas)");
                        }
                        Ok(Err(e)) => tracing::warn!(
                            "TLS client CAs not reloaded, still using the previous ones: {e:#}"
                        ),
                        Err(e) => tracing::warn!(error = %e, "TLS client CA reload failed"),
                    }
                }
                let now = (stamp(&cert_path), stamp(&key_path));
                if now == seen {
                    continue;
                }
                seen = now;
                let (c, k) = (cert_path.clone(), key_path.clone());
                match tokio::task::spawn_blocking(move || load_pair(&c, &k)).await {
                    Ok(Ok(pair)) => {
                        if let Ok(mut current) = cert.0.write() {
                            *current = Arc::new(pair);
                        }
                        tracing::info!(
                            certificate = %cert_path.display(),
                            "TLS certificate reloaded"
                        );
                    }
                    Ok(Err(e)) => tracing::warn!(
                        "TLS certificate not reloaded, still serving the previous one: {e:#}"
                    ),
                    Err(e) => tracing::warn!(error = %e, "TLS certificate reload failed"),
                }
            }
        })
    }
}

/// The rustls configuration of `http` (versions, client CAs, ALPN) around
/// the certificate `cert` serves.
fn server_config(http: &Http, cert: Arc<Current>) -> anyhow::Result<ServerConfig> {
    let versions: &[&rustls::SupportedProtocolVersion] = match http.tls.minimum()? {
        MinTls::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        MinTls::Tls13 => &[&rustls::version::TLS13],
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .context("http.tls.minimumtls")?;
    let builder = if http.tls.clientcas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        for path in &http.tls.clientcas {
            let certs = read_certs(path)
                .with_context(|| format!("http.tls.clientcas {}", path.display()))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    anyhow!(
                        "http.tls.clientcas {}: not a CA certificate: {e}",
                        path.display()
                    )
                })?;
            }
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| anyhow!("http.tls.clientcas: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = if http.http2.disabled {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(config)
}

/// What tells a file changed: modification time, length and inode.
fn stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let ino = 0;
    Some((meta.modified().ok()?, meta.len(), ino))
}
