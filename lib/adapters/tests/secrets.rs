//! Secrets Manager's `GetSecretValue`, made without its SDK: against moto (a secret
//! read, a missing one, a binary one), and against a server of the test's own that
//! answers as scripted (errors, throttling, cut connections, silence), to see the
//! retries, what goes over the wire, and that the signature covers what was sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use orderflow_adapters::calls::{CallCounter, Calls};
use orderflow_adapters::config::{Roots, https_connector};
use orderflow_adapters::secrets::{MAX_ATTEMPTS, SecretError, SecretsManager};
use orderflow_provision::local;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A reader against the emulator, counting into `calls`.
async fn moto(calls: &Arc<Calls>) -> SecretsManager {
    SecretsManager::from_sdk_config(&local::sdk_config().await, https_connector(Roots::System))
        .unwrap()
        .counted_by(CallCounter::into(calls.clone()))
}

#[tokio::test]
async fn a_secret_string_is_read_and_a_missing_or_binary_secret_is_an_error_after_one_call() {
    let sdk = aws_sdk_secretsmanager::Client::new(&local::sdk_config().await);
    let calls = Arc::new(Calls::default());
    let secrets = moto(&calls).await;

    let name = local::unique_name("secret");
    sdk.create_secret()
        .name(&name)
        .secret_string("the value, with \"quotes\" and ünïcode")
        .send()
        .await
        .unwrap();
    assert_eq!(
        secrets.secret_string(&name).await.unwrap(),
        "the value, with \"quotes\" and ünïcode"
    );
    // A new version is what the next read gets.
    sdk.put_secret_value()
        .secret_id(&name)
        .secret_string("rotated")
        .send()
        .await
        .unwrap();
    assert_eq!(secrets.secret_string(&name).await.unwrap(), "rotated");

    let missing = secrets
        .secret_string(&local::unique_name("no-such-secret"))
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, SecretError::Service { status: 400..=499, kind, .. } if kind == "ResourceNotFoundException"),
        "{missing:?}"
    );
    assert!(!missing.is_retryable());

    let binary = local::unique_name("binary-secret");
    sdk.create_secret()
        .name(&binary)
        .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![0_u8, 1, 2]))
        .send()
        .await
        .unwrap();
    assert!(matches!(
        secrets.secret_string(&binary).await,
        Err(SecretError::NotAString)
    ));

    assert_eq!(
        calls.snapshot().into_iter().collect::<Vec<_>>(),
        [(("Secrets Manager".to_owned(), "GetSecretValue".to_owned()), 4)],
        "one call each, none retried"
    );
}

/// What the scripted server does with one request.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// Answers with this status, `x-amzn-ErrorType` (if any) and body.
    Status(u16, Option<&'static str>, &'static str),
    /// Closes the connection without answering.
    Close,
    /// Never answers.
    Silent,
}

/// A request as the server received it: its head (lines) and body.
#[derive(Debug, Clone)]
struct Received {
    head: Vec<String>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.iter().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A server whose `n`th request gets `script[n]` (the last entry once past the end),
/// one request per connection; what it received, in order.
async fn scripted(script: Vec<Reply>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut stream).await else {
                    return;
                };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(request);
                    log.len() - 1
                };
                match script[n.min(script.len() - 1)] {
                    Reply::Status(status, kind, body) => {
                        let kind = kind
                            .map(|k| format!("x-amzn-errortype: {k}\r\n"))
                            .unwrap_or_default();
                        let answer = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\n{kind}\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(answer.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                    Reply::Close => drop(stream),
                    Reply::Silent => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    (endpoint, received)
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<String> = String::from_utf8_lossy(&buffer[..end])
                .lines()
                .map(ToOwned::to_owned)
                .collect();
            let mut received = Received {
                head,
                body: Vec::new(),
            };
            let length: usize = received
                .header("content-length")
                .map_or(0, |v| v.parse().unwrap());
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
                buffer.extend_from_slice(&chunk[..n]);
            }
            received.body = buffer[end + 4..end + 4 + length].to_vec();
            return Some(received);
        }
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    }
}

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN: &str = "a-session-token";

fn reader(endpoint: &str, calls: &Arc<Calls>) -> SecretsManager {
    let credentials = Credentials::new(KEY_ID, SECRET_KEY, Some(TOKEN.into()), None, "test");
    SecretsManager::new(
        endpoint,
        "eu-west-1",
        SharedCredentialsProvider::new(credentials),
        https_connector(Roots::System),
    )
    .unwrap()
    .counted_by(CallCounter::into(calls.clone()))
}

const ANSWER: &str =
    r#"{"ARN":"arn:aws:secretsmanager:eu-west-1:1:secret:k","Name":"k","SecretString":"s3cr3t"}"#;

#[tokio::test]
async fn the_request_is_the_services_json_call_signed_over_exactly_what_was_sent() {
    let (endpoint, received) = scripted(vec![Reply::Status(200, None, ANSWER)]).await;
    let calls = Arc::new(Calls::default());
    assert_eq!(
        reader(&endpoint, &calls).secret_string("k").await.unwrap(),
        "s3cr3t"
    );

    let request = received.lock().unwrap()[0].clone();
    assert_eq!(request.head[0], "POST / HTTP/1.1");
    assert_eq!(
        request.header("x-amz-target"),
        Some("secretsmanager.GetSecretValue")
    );
    assert_eq!(request.header("content-type"), Some("application/x-amz-json-1.1"));
    assert_eq!(request.header("x-amz-security-token"), Some(TOKEN));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&request.body).unwrap(),
        serde_json::json!({ "SecretId": "k" })
    );

    // The server's check: the signature recomputed from the request as it arrived.
    let authorization = request.header("authorization").unwrap();
    let (scope, rest) = authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .unwrap()
        .split_once(", SignedHeaders=")
        .unwrap();
    let (signed_headers, signature) = rest.split_once(", Signature=").unwrap();
    let date = request.header("x-amz-date").unwrap();
    assert_eq!(
        scope,
        format!("{KEY_ID}/{}/eu-west-1/secretsmanager/aws4_request", &date[..8])
    );
    let signed: Vec<&str> = signed_headers.split(';').collect();
    for needed in [
        "host",
        "content-type",
        "x-amz-target",
        "x-amz-date",
        "x-amz-security-token",
    ] {
        assert!(
            signed.contains(&needed),
            "{needed} is not signed: {signed_headers}"
        );
    }
    let url = format!("{endpoint}/");
    assert_eq!(
        signature,
        signature_of(&request, &url, &signed, SECRET_KEY),
        "the signature is over the request as sent"
    );
    // Another key's signature differs: the check can fail.
    assert_ne!(
        signature,
        signature_of(&request, &url, &signed, "another secret key")
    );
}

/// The signature `secret_key` gives `request` as received at `url`, over the headers
/// `signed` at the time its `x-amz-date` says: what the service computes to check it.
fn signature_of(request: &Received, url: &str, signed: &[&str], secret_key: &str) -> String {
    let date = request.header("x-amz-date").unwrap();
    let time = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", date)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap();
    let headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|name| (*name, request.header(name).unwrap()))
        .collect();
    let identity = Credentials::new(KEY_ID, secret_key, Some(TOKEN.into()), None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("secretsmanager")
        .time(std::time::SystemTime::from(time.timestamp()))
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = aws_sigv4::http_request::SignableRequest::new(
        "POST",
        url,
        headers.into_iter(),
        aws_sigv4::http_request::SignableBody::Bytes(&request.body),
    )
    .unwrap();
    aws_sigv4::http_request::sign(signable, &params)
        .unwrap()
        .into_parts()
        .1
}

#[tokio::test]
async fn server_errors_throttling_and_cut_connections_are_retried_and_then_answered() {
    let (endpoint, received) = scripted(vec![
        Reply::Status(500, None, r#"{"__type":"InternalServiceError","message":"oops"}"#),
        Reply::Status(400, Some("ThrottlingException"), r#"{"message":"Rate exceeded"}"#),
        Reply::Status(200, None, ANSWER),
    ])
    .await;
    let calls = Arc::new(Calls::default());
    assert_eq!(
        reader(&endpoint, &calls).secret_string("k").await.unwrap(),
        "s3cr3t"
    );
    assert_eq!(received.lock().unwrap().len(), 3);
    assert_eq!(calls.total(), 3, "every attempt is a call");

    let (endpoint, received) = scripted(vec![Reply::Close, Reply::Status(200, None, ANSWER)]).await;
    assert_eq!(
        reader(&endpoint, &calls).secret_string("k").await.unwrap(),
        "s3cr3t"
    );
    assert_eq!(received.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn an_outage_fails_after_the_last_attempt_and_a_refusal_at_once() {
    let calls = Arc::new(Calls::default());
    let (endpoint, received) = scripted(vec![Reply::Status(503, None, "")]).await;
    let error = reader(&endpoint, &calls).secret_string("k").await.unwrap_err();
    assert!(
        matches!(error, SecretError::Service { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(received.lock().unwrap().len(), MAX_ATTEMPTS as usize);

    let (endpoint, received) = scripted(vec![Reply::Close]).await;
    let error = reader(&endpoint, &calls).secret_string("k").await.unwrap_err();
    assert!(matches!(error, SecretError::Transport(_)), "{error:?}");
    assert_eq!(received.lock().unwrap().len(), MAX_ATTEMPTS as usize);

    let (endpoint, received) = scripted(vec![Reply::Status(
        400,
        None,
        r#"{"__type":"AccessDeniedException","Message":"not allowed"}"#,
    )])
    .await;
    let error = reader(&endpoint, &calls).secret_string("k").await.unwrap_err();
    assert!(
        matches!(&error, SecretError::Service { kind, message, .. } if kind == "AccessDeniedException" && message == "not allowed"),
        "{error:?}"
    );
    assert_eq!(received.lock().unwrap().len(), 1, "a refusal is not retried");

    let (endpoint, received) = scripted(vec![Reply::Status(200, None, "<html>proxy</html>")]).await;
    let error = reader(&endpoint, &calls).secret_string("k").await.unwrap_err();
    assert!(matches!(error, SecretError::Malformed(_)), "{error:?}");
    assert_eq!(received.lock().unwrap().len(), 1);

    // Nothing listens: refused connections are retried, then reported.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = reader(&format!("http://127.0.0.1:{port}"), &calls)
        .secret_string("k")
        .await
        .unwrap_err();
    assert!(matches!(error, SecretError::Transport(_)), "{error:?}");
}

#[tokio::test]
async fn a_silent_service_times_out_within_the_calls_limit() {
    let (endpoint, received) = scripted(vec![Reply::Silent]).await;
    let calls = Arc::new(Calls::default());
    let started = Instant::now();
    let error = reader(&endpoint, &calls).secret_string("k").await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, SecretError::TimedOut(_)), "{error:?}");
    assert!(error.is_retryable());
    // Each attempt gives up after its 3 s; the call as a whole after 7 s.
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(took >= orderflow_adapters::config::ATTEMPT_TIMEOUT, "{took:?}");
    let attempts = received.lock().unwrap().len();
    assert!((2..=MAX_ATTEMPTS as usize).contains(&attempts), "{attempts}");
}
