//! Trust for HTTPS: which roots, a client certificate for mutual TLS, the development escape
//! hatch, and TLS failures told in words that say what to do.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, ErrorKind};

/// A root certificate to trust, such as a corporate CA or the CA of a self-signed server.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Certificate({} in the bundle)", self.der.len())
    }
}

impl Certificate {
    /// Every certificate of a PEM file (`-----BEGIN CERTIFICATE-----` blocks). Fails with
    /// [`ErrorKind::Config`] when there is none or one is malformed.
    pub fn from_pem(pem: &[u8]) -> Result<Certificate, Error> {
        let der = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::config(format!("the PEM certificate could not be read: {e}")))?;
        if der.is_empty() {
            return Err(Error::config("no certificate in the PEM data (expected -----BEGIN CERTIFICATE-----)"));
        }
        Ok(Certificate { der })
    }

    /// One DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Certificate {
        Certificate { der: vec![CertificateDer::from(der.to_vec())] }
    }
}

/// A client certificate chain and its private key, for servers that require mutual TLS.
#[derive(Clone)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({} certificates, key [REDACTED])", self.chain.len())
    }
}

impl Identity {
    /// A certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Identity, Error> {
        let chain = Certificate::from_pem(cert_chain)?.der;
        // The parse error could quote the key: it is not chained.
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|_| Error::config("no usable private key in the PEM data (PKCS#8, PKCS#1 or SEC1 expected)"))?;
        Ok(Identity { chain, key: Arc::new(key) })
    }
}

/// The acknowledgement [`HttpClientBuilder::dangerously_accept_any_certificate`] needs:
/// HTTPS without checking who the server is. For a development server with a self-signed
/// certificate only; anyone on the path can read and change the traffic, API key included.
/// Prefer [`add_root_certificate`](super::HttpClientBuilder::add_root_certificate) with the
/// server's certificate.
///
/// [`HttpClientBuilder::dangerously_accept_any_certificate`]: super::HttpClientBuilder::dangerously_accept_any_certificate
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptAnyCertificate(());

impl AcceptAnyCertificate {
    /// Says, in the code that does it, that certificate checks are off.
    pub fn i_understand_this_disables_server_authentication() -> AcceptAnyCertificate {
        AcceptAnyCertificate(())
    }
}

/// The trust settings of a client.
#[derive(Clone, Debug)]
pub(crate) struct TlsSettings {
    pub(crate) roots: Vec<Certificate>,
    pub(crate) built_in_roots: bool,
    pub(crate) identity: Option<Identity>,
    pub(crate) accept_any: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings { roots: Vec::new(), built_in_roots: true, identity: None, accept_any: false }
    }
}

impl TlsSettings {
    /// The connector: the OS roots (rustls-native-certs: the system store, or `SSL_CERT_FILE`
    /// / `SSL_CERT_DIR` when set) and the webpki roots, unless turned off, plus the given ones.
    pub(crate) fn connector(&self) -> Result<tokio_rustls::TlsConnector, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if self.built_in_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::debug!(error = %e, "a system root certificate could not be loaded");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "system root certificates");
        }
        for cert in &self.roots {
            for der in &cert.der {
                roots
                    .add(der.clone())
                    .map_err(|e| Error::config(format!("a root certificate given to the client is not usable: {e}")))?;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::config(format!("TLS setup failed: {e}")))?;
        let builder = if self.accept_any {
            tracing::warn!("TLS certificate checks are OFF for this client (dangerously_accept_any_certificate)");
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        } else {
            if roots.is_empty() {
                return Err(Error::config(
                    "no root certificates to check servers against: add one with add_root_certificate \
                     or keep the built-in roots",
                ));
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| Error::config(format!("the client certificate or key is not usable: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }
}

/// Accepts any server certificate (signatures of the handshake are still checked).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure inside an I/O error, told as what failed and what to do. Certificate
/// problems are not retryable: sending again meets the same certificate.
pub(crate) fn describe(host: &str, e: &std::io::Error) -> Option<Error> {
    let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    let mut retryable = false;
    let message = match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "the certificate of {host} is signed by an unknown issuer (a corporate or self-signed CA?): \
                 trust the CA with SSL_CERT_FILE=/path/ca.pem or HttpClientBuilder::add_root_certificate"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => format!(
                "the certificate of {host} is not valid for that name: use the host name it was issued for \
                 ({tls})"
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                "the certificate of {host} has expired (or this machine's clock is wrong): renew it on the server"
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("the certificate of {host} is not valid yet: check this machine's clock")
            }
            other => format!("the certificate of {host} was refused ({other:?}): {tls}"),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::AccessDenied),
        ) => format!(
            "{host} refused the TLS connection ({alert:?}): it wants a client certificate it trusts \
             (mutual TLS); set one with HttpClientBuilder::identity"
        ),
        other => {
            retryable = true;
            format!("the TLS connection with {host} failed: {other}")
        }
    };
    Some(Error::new(ErrorKind::Connect, message).with_retryable(retryable))
}
