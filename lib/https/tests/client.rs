//! The HTTPS client under a real SDK client, against servers of the test's own on
//! loopback: a TLS server whose certificate comes from the test's own authority, and
//! plain servers that answer, never answer, cut their answer short, or are not there.
//! What is checked is what the SDK's retry strategy sees: the answer, or the kind of
//! each failure, and how many connections were opened.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test code")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::SdkError;
use aws_smithy_types::retry::ErrorKind;
use orderflow_https::{RootCertStore, shared_client};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const BODY: &str = r#"{"TableNames":["orders"]}"#;

/// What a server does with one connection.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Answers every request on it.
    Answer,
    /// Reads the request and never answers.
    Silent,
    /// Reads the request, writes half a status line's headers and closes.
    CutShort,
}

struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
}

/// A server on loopback whose `n`th connection behaves as `plan[n]` (then `Answer`).
async fn server(tls: Option<Arc<rustls::ServerConfig>>, plan: Vec<Behaviour>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let behaviour = plan.get(n).copied().unwrap_or(Behaviour::Answer);
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(config) => {
                        if let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                            serve(stream, behaviour).await;
                        }
                    }
                    None => serve(stream, behaviour).await,
                }
            });
        }
    });
    Server { port, connections }
}

/// HTTP/1.1 with keep-alive, as far as these tests need: each request's head and its
/// `content-length` body are read before the behaviour applies.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, behaviour: Behaviour) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if !read_more(&mut stream, &mut buffer).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buffer.len() < head_end + length {
            if !read_more(&mut stream, &mut buffer).await {
                return;
            }
        }
        buffer.drain(..head_end + length);
        match behaviour {
            Behaviour::Answer => {
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{BODY}",
                    BODY.len()
                );
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
            Behaviour::Silent => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return;
            }
            Behaviour::CutShort => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-").await;
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0_u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// A certificate authority of the test's own, and a server configuration with a
/// certificate it issued for 127.0.0.1.
fn authority() -> (CertificateDer<'static>, Arc<rustls::ServerConfig>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
    (ca.der().clone(), Arc::new(config))
}

/// A plain HTTP server on loopback whose `n`th connection behaves as `plan[n]`.
async fn server_with(plan: Vec<Behaviour>) -> Server {
    server(None, plan).await
}

fn roots(ca: CertificateDer<'static>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(ca).unwrap();
    roots
}

/// A DynamoDB client through the HTTPS client, at `scheme://127.0.0.1:port`.
fn dynamodb(
    scheme: &str,
    port: u16,
    roots: RootCertStore,
    attempts: u32,
    read_timeout: Option<Duration>,
) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(format!("{scheme}://127.0.0.1:{port}"))
        .http_client(shared_client(roots))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(attempts)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .timeout_config({
            let mut timeouts = TimeoutConfig::builder().connect_timeout(Duration::from_secs(1));
            timeouts.set_read_timeout(read_timeout);
            timeouts.build()
        })
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

type Failure = aws_smithy_runtime_api::client::result::ConnectorError;

/// The connector error of a call that failed to dispatch or to get an answer.
fn connector_error<E: std::fmt::Debug>(
    error: &SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> &Failure {
    match error {
        SdkError::DispatchFailure(failure) => failure.as_connector_error().unwrap(),
        other => panic!("not a dispatch failure: {other:?}"),
    }
}

#[tokio::test]
async fn calls_over_tls_to_a_server_the_roots_vouch_for_are_answered_on_one_connection() {
    let (ca, config) = authority();
    let server = server(Some(config), vec![]).await;
    let client = dynamodb("https", server.port, roots(ca), 1, None);
    for _ in 0..3 {
        let tables = client.list_tables().send().await.unwrap();
        assert_eq!(tables.table_names(), ["orders"]);
    }
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "the connection is pooled and reused"
    );
}

#[tokio::test]
async fn a_server_whose_certificate_the_roots_do_not_vouch_for_is_refused() {
    let (_, config) = authority();
    let (stranger, _) = authority();
    let server = server(Some(config), vec![]).await;
    let error = dynamodb("https", server.port, roots(stranger), 1, None)
        .list_tables()
        .send()
        .await
        .unwrap_err();
    let failure = connector_error(&error);
    assert!(failure.is_io(), "{failure:?}");
    assert!(
        format!("{failure:?}").contains("InvalidCertificate"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_in_time_is_a_timeout_and_the_retry_takes_a_new_connection() {
    let (ca, _) = authority();
    let server = server_with(vec![Behaviour::Silent]).await;
    let once = dynamodb(
        "http",
        server.port,
        roots(ca.clone()),
        1,
        Some(Duration::from_millis(200)),
    );
    let error = once.list_tables().send().await.unwrap_err();
    assert!(connector_error(&error).is_timeout(), "{error:?}");

    let server = server_with(vec![Behaviour::Silent]).await;
    let retried = dynamodb(
        "http",
        server.port,
        roots(ca),
        2,
        Some(Duration::from_millis(200)),
    );
    let tables = retried.list_tables().send().await.unwrap();
    assert_eq!(tables.table_names(), ["orders"]);
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_answer_cut_short_is_transient_and_retried_on_a_new_connection() {
    let (ca, _) = authority();
    let server = server_with(vec![Behaviour::CutShort]).await;
    let error = dynamodb("http", server.port, roots(ca.clone()), 1, None)
        .list_tables()
        .send()
        .await
        .unwrap_err();
    let failure = connector_error(&error);
    assert!(
        failure.is_io() || failure.as_other() == Some(ErrorKind::TransientError),
        "{failure:?}"
    );

    let server = server_with(vec![Behaviour::CutShort]).await;
    let tables = dynamodb("http", server.port, roots(ca), 2, None)
        .list_tables()
        .send()
        .await
        .unwrap();
    assert_eq!(tables.table_names(), ["orders"]);
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_the_handshake_is_a_timeout_within_the_connect_timeout() {
    let (ca, _) = authority();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts every connection and holds it, saying nothing: no TLS handshake.
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            connections.push(stream);
        }
    });
    // The read timeout is far longer than the connect timeout (one second): the
    // handshake is the connect's, and the attempt fails within it.
    let client = dynamodb("https", port, roots(ca), 1, Some(Duration::from_secs(30)));
    let started = std::time::Instant::now();
    let error = client.list_tables().send().await.unwrap_err();
    let took = started.elapsed();
    assert!(connector_error(&error).is_timeout(), "{error:?}");
    assert!(
        took < Duration::from_secs(5),
        "failed at the connect timeout, not the read timeout: {took:?}"
    );
    held.abort();
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_an_io_failure() {
    let (ca, _) = authority();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let error = dynamodb("http", port, roots(ca), 1, None)
        .list_tables()
        .send()
        .await
        .unwrap_err();
    assert!(connector_error(&error).is_io(), "{error:?}");
}
