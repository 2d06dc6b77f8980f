//! HTTPS without a proxy: a TLS listener for axum (rustls) whose
//! certificate and key are read from PEM files and read again on SIGHUP,
//! so a renewed certificate (certbot, an internal CA) takes effect without
//! a restart. A reload that fails keeps the old certificate and says why.
//!
//! Handshakes run on their own tasks with a deadline, so a client that
//! opens a connection and says nothing holds up no one else.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for axum to take them.
const BACKLOG: usize = 256;

/// Build a server config from PEM files (the chain, then the key).
pub fn load(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls cert {}: no CERTIFICATE in the file",
            cert.display()
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: the key does not fit the certificate ({e})"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The current certificate, replaceable while serving.
#[derive(Clone)]
pub struct Certs {
    paths: (PathBuf, PathBuf),
    acceptor: Arc<RwLock<TlsAcceptor>>,
}

impl Certs {
    pub fn open(cert: &Path, key: &Path) -> Result<Self, String> {
        let cfg = load(cert, key)?;
        Ok(Self {
            paths: (cert.to_path_buf(), key.to_path_buf()),
            acceptor: Arc::new(RwLock::new(TlsAcceptor::from(Arc::new(cfg)))),
        })
    }

    /// Read the files again; on failure the old certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let cfg = load(&self.paths.0, &self.paths.1)?;
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) =
            TlsAcceptor::from(Arc::new(cfg));
        Ok(())
    }

    fn current(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reload on every SIGHUP until the process ends.
    pub fn reload_on_sighup(&self) {
        #[cfg(unix)]
        {
            let me = self.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    match me.reload() {
                        Ok(()) => {
                            tracing::info!(cert = %me.paths.0.display(), "TLS certificate reloaded")
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "TLS reload failed; keeping the old certificate")
                        }
                    }
                }
            });
        }
    }
}

/// An axum listener that hands over connections once their TLS handshake
/// is done.
pub struct TlsListener {
    local: SocketAddr,
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, certs: Certs) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(async move {
            loop {
                let (sock, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: wait a little, as axum does.
                        tracing::warn!(error = %e, "accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let acceptor = certs.current();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, rx })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The acceptor task ended (it never does while the listener
            // lives); park rather than spin.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for crate::web::net::PeerAddr
{
    fn connect_info(s: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        crate::web::net::PeerAddr(*s.remote_addr())
    }
}
