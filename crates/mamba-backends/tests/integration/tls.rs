//! Trust (issue 15, section 2): a TLS server on 127.0.0.1 with certificates from a CA this test
//! generates (rcgen). Accepted through `SSL_CERT_FILE` and `add_root_certificate`, refused
//! without them, a name mismatch refused, mutual TLS accepted and refused, and the named
//! escape hatch for self-signed development servers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mamba_backends::{
    http::{AcceptAnyCertificate, Certificate, HttpClient, Identity},
    ErrorKind, Message, ModelBackend, OpenAICompatibleBackend, RequestOptions, RetryPolicy,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const OK_BODY: &str = r#"{"choices":[{"message":{"content":"secure"},"finish_reason":"stop"}]}"#;

pub(crate) struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf for `names` (server), or a client certificate.
    fn issue(&self, names: &[&str], client: bool) -> (rcgen::Certificate, KeyPair) {
        let mut params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("client"));
        if client {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert, key)
    }
}

pub(crate) struct TlsServer {
    pub(crate) port: u16,
    handshakes_failed: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl TlsServer {
    /// Serves one JSON answer per connection with a certificate for `names` from `ca`; with
    /// `client_ca`, clients must present a certificate from it.
    pub(crate) async fn start(ca: &Ca, names: &[&str], client_ca: Option<&Ca>) -> TlsServer {
        let (cert, key) = ca.issue(names, false);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(client_ca) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(client_ca.cert.der().clone()).unwrap();
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let config = builder.with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let handshakes_failed = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (failed, count) = (handshakes_failed.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (acceptor, failed) = (acceptor.clone(), failed.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    loop {
                        match tls.read(&mut tmp).await {
                            Ok(0) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                            Err(_) => {
                                failed.fetch_add(1, Ordering::SeqCst);
                                return;
                            }
                        }
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break;
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{OK_BODY}",
                        OK_BODY.len()
                    );
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer { port, handshakes_failed, connections }
    }

    pub(crate) fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/v1", self.port)
    }
}

/// One answer from `url` through `client` (shared with the proxy tests).
pub(crate) async fn ask(url: &str, client: HttpClient) -> Result<String, mamba_backends::Error> {
    let b = OpenAICompatibleBackend::builder("m")
        .base_url(url)
        .http_client(client)
        .timeout(Duration::from_secs(10))
        .retry_policy(RetryPolicy::default().initial_backoff(Duration::from_millis(1)))
        .build()
        .unwrap();
    b.complete(&[Message::user("hi")], &RequestOptions::new()).await.map(|r| r.content)
}

fn only(ca: &Ca) -> HttpClient {
    HttpClient::builder()
        .tls_built_in_roots(false)
        .add_root_certificate(Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
}

/// Refused with the built-in roots (and said why, once: not retried); accepted with the CA in
/// `SSL_CERT_FILE` (read with the OS roots) and with `add_root_certificate` beside them.
#[tokio::test]
async fn private_ca_refused_then_trusted_by_file_and_by_code() {
    let ca = Ca::new("mamba test CA");
    let server = TlsServer::start(&ca, &["localhost"], None).await;

    let e = ask(&server.url("localhost"), HttpClient::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect);
    assert!(!e.is_retryable(), "{e}");
    assert!(e.message().contains("unknown issuer") && e.message().contains("SSL_CERT_FILE"), "{e}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1, "a certificate error was retried");

    let dir = std::env::temp_dir().join(format!("mamba-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ca.pem");
    std::fs::write(&file, ca.pem()).unwrap();
    // The only test that sets it; the others turn the built-in roots off.
    std::env::set_var("SSL_CERT_FILE", &file);
    let with_env = ask(&server.url("localhost"), HttpClient::new()).await;
    std::env::remove_var("SSL_CERT_FILE");
    assert_eq!(with_env.unwrap(), "secure");

    let client =
        HttpClient::builder().add_root_certificate(Certificate::from_pem(ca.pem().as_bytes()).unwrap()).build();
    assert_eq!(ask(&server.url("localhost"), client).await.unwrap(), "secure");
    assert_eq!(ask(&server.url("127.0.0.1"), only(&ca)).await.unwrap_err().kind(), ErrorKind::Connect);
}

/// A certificate for another name is refused, and the error says so.
#[tokio::test]
async fn name_mismatch_is_refused() {
    let ca = Ca::new("mamba test CA");
    let server = TlsServer::start(&ca, &["api.other.test"], None).await;
    let e = ask(&server.url("localhost"), only(&ca)).await.unwrap_err();
    assert!(!e.is_retryable());
    assert!(e.message().contains("not valid for that name"), "{e}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

/// Mutual TLS: accepted with a client certificate from the CA the server trusts; refused
/// without one, and with one from another CA, with a message that names client certificates.
#[tokio::test]
async fn mutual_tls_accepted_and_refused() {
    let ca = Ca::new("mamba test CA");
    let clients = Ca::new("mamba client CA");
    let server = TlsServer::start(&ca, &["localhost"], Some(&clients)).await;
    let identity = |issuer: &Ca| {
        let (cert, key) = issuer.issue(&["client.test"], true);
        Identity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap()
    };
    let with = |issuer: &Ca| {
        HttpClient::builder()
            .tls_built_in_roots(false)
            .add_root_certificate(Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .identity(identity(issuer))
            .build()
    };
    assert_eq!(ask(&server.url("localhost"), with(&clients)).await.unwrap(), "secure");
    let e = ask(&server.url("localhost"), only(&ca)).await.unwrap_err();
    assert!(e.message().contains("client certificate"), "{e}");
    assert!(!e.is_retryable());
    let e = ask(&server.url("localhost"), with(&Ca::new("stranger CA"))).await.unwrap_err();
    assert!(e.message().contains("client certificate"), "{e}");
    assert!(!format!("{:?}", identity(&clients)).contains("PRIVATE KEY"));
    assert!(Identity::from_pem(ca.pem().as_bytes(), b"not a key").is_err());
    assert!(Certificate::from_pem(b"nothing").is_err());
}

/// The development escape hatch: a self-signed server without its CA.
#[tokio::test]
async fn accept_any_certificate_only_when_named() {
    let ca = Ca::new("self-signed dev");
    let server = TlsServer::start(&ca, &["localhost"], None).await;
    let client = HttpClient::builder()
        .tls_built_in_roots(false)
        .dangerously_accept_any_certificate(AcceptAnyCertificate::i_understand_this_disables_server_authentication())
        .build();
    assert_eq!(ask(&server.url("localhost"), client).await.unwrap(), "secure");
    let e = ask(&server.url("localhost"), HttpClient::builder().tls_built_in_roots(false).build()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert_eq!(server.handshakes_failed.load(Ordering::SeqCst), 0);
}
