//! TLS with rustls (ring provider): certificates and keys from PEM, the client's and the
//! server's settings, and the handshakes, which run on the poller.

use std::sync::Arc;

use bytes::Bytes;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::{Io, PeerInfo};
use crate::error::{Error, Result};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One or more X.509 certificates: a CA to trust, or a chain to present.
///
/// ```
/// let err = rsgrpc::tls::Certificate::from_pem("not a certificate").unwrap_err();
/// assert!(err.is_invalid_tls());
/// ```
#[derive(Clone)]
pub struct Certificate {
    certs: Vec<CertificateDer<'static>>,
}

impl Certificate {
    /// Every certificate in a PEM document (`-----BEGIN CERTIFICATE-----` sections).
    ///
    /// # Errors
    ///
    /// When the PEM does not parse or holds no certificate.
    pub fn from_pem(pem: impl AsRef<[u8]>) -> Result<Certificate> {
        let certs = CertificateDer::pem_slice_iter(pem.as_ref())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::invalid_tls(format!("cannot parse a certificate PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::invalid_tls("the PEM holds no certificate"));
        }
        Ok(Certificate { certs })
    }

    /// Certificates in DER, one per item.
    pub fn from_der(certs: impl IntoIterator<Item = Vec<u8>>) -> Certificate {
        Certificate {
            certs: certs.into_iter().map(CertificateDer::from).collect(),
        }
    }
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("certificates", &self.certs.len())
            .finish()
    }
}

/// A certificate chain and its private key, presented by a server, or by a client for
/// mutual TLS.
#[derive(Clone)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
}

impl Identity {
    /// A chain (leaf first) and a private key (PKCS#8, PKCS#1 or SEC1), both PEM.
    ///
    /// # Errors
    ///
    /// When either PEM does not parse, holds no certificate, or holds no key.
    pub fn from_pem(chain: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<Identity> {
        let chain = Certificate::from_pem(chain)?.certs;
        let key = PrivateKeyDer::from_pem_slice(key.as_ref())
            .map_err(|e| Error::invalid_tls(format!("cannot parse a private key PEM: {e}")))?;
        Ok(Identity {
            chain,
            key: Arc::new(key),
        })
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Identity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// How a channel checks the server and, for mutual TLS, proves who it is.
///
/// With no root of trust configured, the channel trusts nothing and every handshake fails:
/// add a CA ([`ca_certificate`](Self::ca_certificate)) or the system's or Mozilla's roots.
#[derive(Clone, Debug, Default)]
pub struct ClientTlsConfig {
    cas: Vec<Certificate>,
    native_roots: bool,
    webpki_roots: bool,
    domain: Option<String>,
    identity: Option<Identity>,
}

impl ClientTlsConfig {
    /// A configuration that trusts nothing yet.
    pub fn new() -> ClientTlsConfig {
        ClientTlsConfig::default()
    }

    /// Trusts servers whose chain leads to `ca`.
    pub fn ca_certificate(mut self, ca: Certificate) -> Self {
        self.cas.push(ca);
        self
    }

    /// Trusts the operating system's roots, read when the channel connects.
    #[cfg(feature = "tls-native-roots")]
    pub fn with_native_roots(mut self) -> Self {
        self.native_roots = true;
        self
    }

    /// Trusts Mozilla's roots, compiled in.
    #[cfg(feature = "tls-webpki-roots")]
    pub fn with_webpki_roots(mut self) -> Self {
        self.webpki_roots = true;
        self
    }

    /// The name the server's certificate must carry, and that is sent as SNI (default:
    /// the target's host). Use it when connecting by address to a server whose
    /// certificate names a host.
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain = Some(name.into());
        self
    }

    /// Presents `identity` to servers that ask for a client certificate (mutual TLS).
    pub fn identity(mut self, identity: Identity) -> Self {
        self.identity = Some(identity);
        self
    }

    pub(crate) fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// The rustls configuration (ALPN `h2`, or `http/1.1` when `http1`).
    pub(crate) fn build(&self, http1: bool) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in &self.cas {
            for cert in &ca.certs {
                roots
                    .add(cert.clone())
                    .map_err(|e| Error::invalid_tls(format!("cannot trust a CA: {e}")))?;
            }
        }
        #[cfg(feature = "tls-webpki-roots")]
        if self.webpki_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        #[cfg(feature = "tls-native-roots")]
        if self.native_roots {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::debug!(%error, "while loading the system's roots");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(Error::invalid_tls(
                    "no usable root found in the system's store",
                ));
            }
        }
        let _ = (self.native_roots, self.webpki_roots);
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid_tls(format!("{e}")))?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|e| Error::invalid_tls(format!("unusable client identity: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = if http1 {
            vec![b"http/1.1".to_vec()]
        } else {
            vec![b"h2".to_vec()]
        };
        Ok(Arc::new(config))
    }
}

/// A server's certificate and key, and whether and how it checks client certificates.
#[derive(Clone, Debug)]
pub struct ServerTlsConfig {
    identity: Identity,
    client_ca: Option<Certificate>,
    client_auth_optional: bool,
}

impl ServerTlsConfig {
    /// Presents `identity`; asks for no client certificate.
    pub fn new(identity: Identity) -> ServerTlsConfig {
        ServerTlsConfig {
            identity,
            client_ca: None,
            client_auth_optional: false,
        }
    }

    /// Requires clients to present a certificate whose chain leads to `ca` (mutual TLS).
    pub fn client_ca_root(mut self, ca: Certificate) -> Self {
        self.client_ca = Some(ca);
        self
    }

    /// With a client CA: lets clients without a certificate connect too (those with one
    /// must still present a valid one). Handlers see who presented what through
    /// [`Request::peer_certificates`](crate::Request::peer_certificates).
    pub fn client_auth_optional(mut self, optional: bool) -> Self {
        self.client_auth_optional = optional;
        self
    }

    /// The rustls configuration (ALPN `h2`, and `http/1.1` when `http1`).
    pub(crate) fn build(&self, http1: bool) -> Result<Arc<rustls::ServerConfig>> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid_tls(format!("{e}")))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in &ca.certs {
                    roots.add(cert.clone()).map_err(|e| {
                        Error::invalid_tls(format!("cannot trust a client CA: {e}"))
                    })?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                );
                let verifier = if self.client_auth_optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(|e| {
                    Error::invalid_tls(format!("cannot check client certificates: {e}"))
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(self.identity.chain.clone(), self.identity.key.clone_key())
            .map_err(|e| Error::invalid_tls(format!("unusable server identity: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        if http1 {
            config.alpn_protocols.push(b"http/1.1".to_vec());
        }
        Ok(Arc::new(config))
    }
}

/// The client's handshake over `tcp`, checking the server's certificate for `domain`.
pub(crate) async fn connect(
    config: Arc<rustls::ClientConfig>,
    domain: &str,
    tcp: TcpStream,
) -> std::result::Result<Io, String> {
    let name = ServerName::try_from(domain.to_owned())
        .map_err(|e| format!("{domain:?} is not a valid TLS server name: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls handshake failed: {e}"))?;
    if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        tracing::debug!("the server did not select ALPN h2; speaking HTTP/2 anyway");
    }
    Ok(Io::ClientTls(Box::new(stream)))
}

/// The server's handshake; returns the stream and the client's certificates.
pub(crate) async fn accept(
    config: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
    mut peer: PeerInfo,
) -> std::io::Result<(Io, PeerInfo)> {
    let stream = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
    peer.certificates = stream.get_ref().1.peer_certificates().map(|chain| {
        chain
            .iter()
            .map(|cert| Bytes::copy_from_slice(cert.as_ref()))
            .collect::<Vec<_>>()
            .into()
    });
    Ok((Io::ServerTls(Box::new(stream)), peer))
}
