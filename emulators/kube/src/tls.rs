//! Optional TLS. kubectl (client-go) sends a kubeconfig's bearer token only over TLS, so the
//! binary serves HTTPS by default. The certificate chain is a fixed, public, test-only CA
//! (`src/tls/ca.crt`) and a loopback leaf (127.0.0.1, ::1, localhost): it protects nothing and
//! exists so real clients can verify the server without `insecure-skip-tls-verify`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// PEM of the test CA to put in `certificate-authority-data`.
pub const CA_PEM: &str = include_str!("tls/ca.crt");
const CERT_PEM: &str = include_str!("tls/server.crt");
const KEY_PEM: &str = include_str!("tls/server.key");

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

pub fn acceptor() -> io::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT_PEM.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(invalid)?;
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).map_err(invalid)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(invalid)?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(invalid)?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TCP listener that completes the TLS handshake before handing connections to axum.
pub struct TlsListener {
    pub tcp: TcpListener,
    pub acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(%e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let handshake = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                self.acceptor.accept(stream),
            )
            .await;
            match handshake {
                Ok(Ok(s)) => return (s, addr),
                Ok(Err(e)) => tracing::debug!(%e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
