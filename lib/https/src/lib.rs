//! The HTTPS client every AWS SDK client here is given: HTTP/1.1 over rustls on ring,
//! through hyper-util's pooled client, one pool per timeout setting.
//!
//! It does what the SDK's own client does for a call (a connect timeout over the lookup,
//! TCP and the TLS handshake, and a read timeout; each
//! error classified as the retry strategy expects, the connection handed to the SDK so
//! a failed attempt's connection is poisoned and not reused) and leaves out what no
//! caller here uses: HTTP/2 (every service orderflow calls answers HTTP/1.1), proxies,
//! and a choice of TLS stacks. Leaving them out took payment's release binary from
//! 6.03 to 5.18 MB.

use std::collections::HashMap;
use std::error::Error;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{
    CaptureConnection, HttpConnector as Tcp, HttpInfo, capture_connection,
};
use hyper_util::rt::{TokioExecutor, TokioTimer};
pub use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

type Pool = Client<ConnectTimeout<hyper_rustls::HttpsConnector<Tcp>>, SdkBody>;

/// A pool's settings: connect and read timeouts.
type Timeouts = (Option<Duration>, Option<Duration>);

/// The client: a TLS configuration and the pools built from it, one per distinct
/// connect and read timeout the SDK asks for (in practice one).
#[derive(Debug, Clone)]
pub struct Https1Client {
    tls: Arc<rustls::ClientConfig>,
    pools: Arc<RwLock<HashMap<Timeouts, SharedHttpConnector>>>,
}

impl Https1Client {
    /// A client trusting `roots`, with TLS 1.2 and 1.3 and the AEAD suites AWS's own
    /// client offers.
    ///
    /// # Errors
    /// When the protocol versions cannot be set up with ring's provider (never with the
    /// versions rustls ships).
    pub fn new(roots: RootCertStore) -> Result<Self, rustls::Error> {
        let ring = rustls::crypto::ring::default_provider();
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: ring
                .cipher_suites
                .iter()
                .copied()
                .filter(|suite| SUITES.contains(&suite.suite()))
                .collect(),
            ..ring
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(tls),
            pools: Arc::default(),
        })
    }

    /// This client as the SDK takes it.
    #[must_use]
    pub fn shared(self) -> SharedHttpClient {
        SharedHttpClient::new(self)
    }

    fn pool(&self, settings: &HttpConnectorSettings) -> Pool {
        let mut tcp = Tcp::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*self.tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let https = ConnectTimeout {
            inner: https,
            limit: settings.connect_timeout(),
        };
        Client::builder(TokioExecutor::new())
            // The timer is what expires idle connections (after hyper-util's 90 s, as in
            // the SDK's client); a connection dropped while the sandbox was frozen fails
            // as I/O and the call is retried on a new one.
            .pool_timer(TokioTimer::new())
            .build(https)
    }
}

/// The suites offered, strongest first: TLS 1.3's AES-GCM, then TLS 1.2's ECDHE with
/// AES-GCM or ChaCha20 (the list the SDK's client restricts rustls to).
const SUITES: &[rustls::CipherSuite] = &[
    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// A shared client trusting `roots`. Should its TLS configuration not build (ring
/// supports every protocol version rustls ships, so this is not expected), the error is
/// logged and every call fails with it, rather than the process stopping.
#[must_use]
pub fn shared_client(roots: RootCertStore) -> SharedHttpClient {
    match Https1Client::new(roots) {
        Ok(client) => client.shared(),
        Err(error) => {
            tracing::error!(error = %error, "TLS configuration unusable");
            let reason = error.to_string();
            aws_smithy_runtime_api::client::http::http_client_fn(move |_, _| unusable(reason.clone()))
        }
    }
}

/// The connector of a client whose TLS configuration did not build: every call fails
/// with `reason`.
#[must_use]
pub fn unusable(reason: impl Into<String>) -> SharedHttpConnector {
    SharedHttpConnector::new(Unusable(reason.into()))
}

/// The connector of a client whose TLS configuration did not build.
#[derive(Debug)]
struct Unusable(String);

impl HttpConnector for Unusable {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(Err(ConnectorError::other(self.0.clone().into(), None)))
    }
}

/// The certificates of a PEM bundle, as roots.
///
/// # Errors
/// A block that is not PEM, or a certificate rustls cannot take as a trust anchor.
pub fn pem_roots(pem: &[u8]) -> Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(pem) {
        let der = der.map_err(|e| rustls::Error::General(format!("PEM: {e}")))?;
        roots.add(der)?;
    }
    Ok(roots)
}

/// The system's roots (`SSL_CERT_FILE`, `SSL_CERT_DIR`, then the platform's store);
/// certificates that do not parse are skipped, as the SDK's client skips them.
#[must_use]
pub fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    if !found.errors.is_empty() {
        tracing::warn!(errors = ?found.errors, "some of the system's TLS roots could not be read");
    }
    let mut roots = RootCertStore::empty();
    let (_, unparsable) = roots.add_parsable_certificates(found.certs);
    if unparsable > 0 {
        tracing::debug!(unparsable, "system TLS roots skipped");
    }
    roots
}

impl HttpClient for Https1Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector(settings)
    }
}

impl Https1Client {
    /// The connector for `settings`' timeouts: the SDK's through [`HttpClient`], and a
    /// caller's own for a request it signs and sends itself. One pool per distinct
    /// setting, shared by every caller asking for it.
    #[must_use]
    pub fn connector(&self, settings: &HttpConnectorSettings) -> SharedHttpConnector {
        let key = (settings.connect_timeout(), settings.read_timeout());
        if let Some(connector) = self
            .pools
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return connector.clone();
        }
        self.pools
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| {
                SharedHttpConnector::new(Connector {
                    pool: self.pool(settings),
                    read_timeout: settings.read_timeout(),
                })
            })
            .clone()
    }
}

/// A connector whose whole connect (the name's lookup, TCP and the TLS handshake) is
/// held to the SDK's connect timeout, as the SDK's own client holds it: a server that
/// accepts and never answers the handshake fails the attempt as a timeout, within the
/// connect timeout, instead of holding it until the read timeout, or for ever.
#[derive(Debug, Clone)]
struct ConnectTimeout<C> {
    inner: C,
    limit: Option<Duration>,
}

impl<C> tower_service::Service<http::Uri> for ConnectTimeout<C>
where
    C: tower_service::Service<http::Uri>,
    C::Error: Into<BoxError>,
    C::Future: Send + 'static,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let limit = self.limit;
        Box::pin(async move {
            match limit {
                Some(limit) => match tokio::time::timeout(limit, connecting).await {
                    Ok(connected) => connected.map_err(Into::into),
                    Err(_) => Err(Box::new(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within the connect timeout ({limit:?})"),
                    )) as BoxError),
                },
                None => connecting.await.map_err(Into::into),
            }
        })
    }
}

/// One pool, as the SDK's connector for one call at a time.
#[derive(Debug, Clone)]
struct Connector {
    pool: Pool,
    read_timeout: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(error) => return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into()))),
        };
        // The SDK asks for the connection after a failed attempt, to poison it.
        let captured = capture_connection(&mut request);
        if let Some(smithy) = request.extensions().get::<CaptureSmithyConnection>() {
            smithy.set_connection_retriever(move || connection_metadata(&captured));
        }
        let response = self.pool.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, response)
                    .await
                    .map_err(|elapsed| ConnectorError::timeout(elapsed.into()))?,
                None => response.await,
            };
            match response {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|error| ConnectorError::other(error.into(), None)),
                Err(error) => Err(classify(error)),
            }
        })
    }
}

fn connection_metadata(captured: &CaptureConnection) -> Option<ConnectionMetadata> {
    let connected = captured.connection_metadata();
    let connected = connected.as_ref()?;
    let mut extras = http::Extensions::new();
    connected.get_extras(&mut extras);
    let info = extras.get::<HttpInfo>();
    let poisoned = captured.clone();
    let mut metadata = ConnectionMetadata::builder().proxied(false).poison_fn(move || {
        if let Some(connection) = poisoned.connection_metadata().as_ref() {
            connection.poison();
        }
    });
    metadata
        .set_local_addr(info.map(HttpInfo::local_addr))
        .set_remote_addr(info.map(HttpInfo::remote_addr));
    Some(metadata.build())
}

/// What kind of failure a call's error is, for the SDK's retry strategy: a timeout, an
/// I/O failure (retried: a refused or reset connection, a failed handshake), the
/// caller's mistake, or a response cut short (retried as transient).
fn classify(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let timed_out = find::<std::io::Error>(&error)
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        || find::<hyper::Error>(&error).is_some_and(hyper::Error::is_timeout);
    if timed_out {
        return ConnectorError::timeout(error.into());
    }
    if error.is_connect() {
        return ConnectorError::io(error.into());
    }
    match find::<hyper::Error>(&error) {
        Some(hyper) if hyper.is_user() => ConnectorError::user(error.into()),
        Some(hyper) if hyper.is_closed() || hyper.is_canceled() => ConnectorError::io(error.into()),
        Some(hyper) if hyper.is_incomplete_message() => {
            ConnectorError::other(error.into(), Some(ErrorKind::TransientError))
        }
        _ if find::<std::io::Error>(&error).is_some() => ConnectorError::io(error.into()),
        _ => ConnectorError::other(BoxError::from(error), None),
    }
}

/// The first error of type `E` in `error`'s chain, `error` included.
fn find<'a, E: Error + 'static>(error: &'a (dyn Error + 'static)) -> Option<&'a E> {
    std::iter::successors(Some(error), |&e| e.source()).find_map(|e| e.downcast_ref::<E>())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    #[test]
    fn a_bad_block_is_refused() {
        let broken = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(pem_roots(broken.as_bytes()).is_err());
    }

    #[test]
    fn only_the_listed_suites_are_offered() {
        let client = Https1Client::new(RootCertStore::empty()).unwrap();
        let offered: Vec<_> = client
            .tls
            .crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert!(!offered.is_empty());
        assert!(offered.iter().all(|s| SUITES.contains(s)), "{offered:?}");
    }
}
