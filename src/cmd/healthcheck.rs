//! `berth healthcheck`: asks a running registry whether it answers, for
//! container HEALTHCHECKs and probes in images that have no shell, curl or
//! wget. One plain HTTP/1.1 GET over a `TcpStream` (over TLS for an
//! `https://` URL, which is the default when `http.tls` is set); the registry
//! is healthy when `/v2/` answers 200 (open) or 401 (authentication required).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use berth::config::Config;

/// Check that a running registry answers (exit 0) or not (exit 1), with no
/// shell tools: for Docker HEALTHCHECK and Kubernetes exec probes.
#[derive(clap::Args)]
pub struct Args {
    /// URL to GET; 200 and 401 count as healthy [default: /v2/ on the
    /// configured http.addr, with 0.0.0.0 and :: as loopback].
    #[arg(long)]
    url: Option<String>,
    /// Config file whose http.addr to check (REGISTRY_HTTP_ADDR overrides it).
    #[arg(long, short, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Seconds to wait for connecting and for each read and write.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

/// Runs the check; prints one line saying what it found.
pub fn run(args: Args) -> ExitCode {
    let url = match args.url {
        Some(u) => u,
        None => {
            let url = Config::load(args.config.as_deref(), std::env::vars())
                .and_then(|c| default_url(&c));
            match url {
                Ok(u) => u,
                Err(e) => {
                    eprintln!("berth healthcheck: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match check(&url, Duration::from_secs(args.timeout.max(1))) {
        Ok(status) => {
            println!("healthy: {url} answered {status}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0:?} is not an http:// or https:// URL like http://127.0.0.1:5000/v2/")]
    BadUrl(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("request to {addr} failed: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} did not answer with an HTTP status line: {line:?}")]
    BadResponse { addr: String, line: String },
    #[error("{url} answered {status}, expected 200 or 401")]
    Unhealthy { url: String, status: u16 },
}

/// The URL of `/v2/` on the address `config` listens on, reachable from
/// the same host: an unspecified address (`0.0.0.0`, `::`) becomes loopback.
pub fn default_url(config: &Config) -> Result<String, berth::config::ConfigError> {
    let mut addr = config.listen_addr()?;
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        _ => {}
    }
    let scheme = if config.http.tls.enabled() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{addr}/v2/"))
}

/// A parsed `http://host[:port][/path]`.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// As written in the URL, for the `Host` header.
    authority: String,
    host: String,
    port: u16,
    path: String,
    /// `https://`.
    tls: bool,
}

fn parse_url(url: &str) -> Result<Target, CheckError> {
    let bad = || CheckError::BadUrl(url.to_string());
    let (rest, tls) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => return Err(bad()),
    };
    let default_port = if tls { 443 } else { 80 };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (host, default_port),
            p => (
                host,
                p.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (authority, default_port),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Target {
        authority: authority.to_string(),
        host: host.to_string(),
        port,
        path: path.to_string(),
        tls,
    })
}

/// Resolves without the system resolver where it can: a static binary in an
/// empty image has no NSS modules, and a health check should not need DNS.
fn resolve(target: &Target) -> Result<Vec<SocketAddr>, CheckError> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    if target.host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), target.port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), target.port),
        ]);
    }
    let name = format!("{}:{}", target.host, target.port);
    let addrs: Vec<SocketAddr> = name
        .to_socket_addrs()
        .map_err(|_| CheckError::Resolve(name.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(CheckError::Resolve(name));
    }
    Ok(addrs)
}

/// GETs `url` and returns the HTTP status code, giving up after `timeout`
/// for each of connecting, writing and reading.
pub fn get_status(url: &str, timeout: Duration) -> Result<u16, CheckError> {
    let target = parse_url(url)?;
    let mut last = None;
    let mut stream = None;
    for addr in resolve(&target)? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let authority = target.authority.clone();
    let stream = match stream {
        Some(s) => s,
        None => {
            return Err(CheckError::Connect {
                addr: authority,
                source: last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()),
            })
        }
    };
    let io = |source| CheckError::Io {
        addr: target.authority.clone(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: berth-healthcheck/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path,
        target.authority,
        env!("CARGO_PKG_VERSION")
    );
    let head = if target.tls {
        let name = rustls_pki_types::ServerName::try_from(target.host.clone())
            .map_err(|_| CheckError::BadUrl(url.to_string()))?;
        let conn = tls_client()
            .and_then(|c| rustls::ClientConnection::new(c, name))
            .map_err(|e| io(std::io::Error::other(e)))?;
        exchange(rustls::StreamOwned::new(conn, stream), &request).map_err(io)?
    } else {
        exchange(stream, &request).map_err(io)?
    };
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").to_string();
    parse_status_line(&line).ok_or(CheckError::BadResponse {
        addr: target.authority,
        line,
    })
}

/// Sends `request` and reads the start of the response.
fn exchange(mut stream: impl Read + Write, request: &str) -> std::io::Result<Vec<u8>> {
    stream.write_all(request.as_bytes())?;
    // The status line is all we need; read until its end (or a small cap).
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// A TLS client that takes any server certificate: the check is of
/// liveness, sends no credentials, and usually talks to its own host, whose
/// CA it does not know. (A registry asking for client certificates,
/// `http.tls.clientcas`, refuses it: the check reports the handshake error.)
fn tls_client() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `HTTP/1.1 200 OK` → 200.
fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Checks `url`: Ok with the status when the registry is healthy.
pub fn check(url: &str, timeout: Duration) -> Result<u16, CheckError> {
    let status = get_status(url, timeout)?;
    if status == 200 || status == 401 {
        Ok(status)
    } else {
        Err(CheckError::Unhealthy {
            url: url.to_string(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_urls() {
        let t = parse_url("http://127.0.0.1:5000/v2/").unwrap();
        assert_eq!(
            t,
            Target {
                authority: "127.0.0.1:5000".into(),
                host: "127.0.0.1".into(),
                port: 5000,
                path: "/v2/".into(),
                tls: false,
            }
        );
        let t = parse_url("http://[::1]:6000").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("::1", 6000, "/")
        );
        let t = parse_url("http://registry/v2/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("registry", 80));
        let t = parse_url("https://registry/v2/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.tls), ("registry", 443, true));
        for bad in [
            "ftp://x/",
            "127.0.0.1:5000",
            "http://",
            "http://:5000/",
            "http://h:port/",
            "http://u:p@h/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 401 Unauthorized"), Some(401));
        assert_eq!(parse_status_line("HTTP/1.0 200"), Some(200));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH"), None);
        assert_eq!(parse_status_line(""), None);
    }

    #[test]
    fn default_url_uses_loopback_for_unspecified() {
        let c = Config::load(None, vec![("REGISTRY_HTTP_ADDR".into(), ":5001".into())]).unwrap();
        assert_eq!(default_url(&c).unwrap(), "http://127.0.0.1:5001/v2/");
        let c = Config::load(
            None,
            vec![("REGISTRY_HTTP_ADDR".into(), "[::]:5002".into())],
        )
        .unwrap();
        assert_eq!(default_url(&c).unwrap(), "http://[::1]:5002/v2/");
        let c = Config::load(
            None,
            vec![("REGISTRY_HTTP_ADDR".into(), "10.1.2.3:5003".into())],
        )
        .unwrap();
        assert_eq!(default_url(&c).unwrap(), "http://10.1.2.3:5003/v2/");
    }

    /// A one-shot server answering every connection with `status_line`.
    fn serve_once(status_line: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ =
                    s.write_all(format!("{status_line}\r\nContent-Length: 0\r\n\r\n").as_bytes());
            }
        });
        format!("http://{addr}/v2/")
    }

    #[test]
    fn healthy_on_200_and_401_only() {
        let t = Duration::from_secs(5);
        assert_eq!(check(&serve_once("HTTP/1.1 200 OK"), t).unwrap(), 200);
        assert_eq!(
            check(&serve_once("HTTP/1.1 401 Unauthorized"), t).unwrap(),
            401
        );
        let e = check(&serve_once("HTTP/1.1 503 Service Unavailable"), t).unwrap_err();
        assert!(
            matches!(e, CheckError::Unhealthy { status: 503, .. }),
            "{e}"
        );
        // Nothing listening.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = check(&format!("http://127.0.0.1:{port}/v2/"), t).unwrap_err();
        assert!(matches!(e, CheckError::Connect { .. }), "{e}");
    }
}
