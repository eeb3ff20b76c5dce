//! The router in Lambda: API Gateway's HTTP API events (payload 2.0) in, its responses
//! out.
//!
//! `lambda_http` turns the event into a [`Request`](lambda_http::Request) (method, path,
//! query, headers, cookies, body, and the request context with the authorizer's claims)
//! as it does under `lambda_http::run`. The response is written here instead: every
//! body the API sends is UTF-8 JSON, and `lambda_http`'s conversion decodes each text
//! body by its declared charset, which links a table of every legacy encoding into the
//! function (about 180 KB of its 6 MB) for bodies that are never anything but UTF-8.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use lambda_http::aws_lambda_events::encodings::Body as GatewayBody;
use lambda_http::http::header::SET_COOKIE;
use lambda_http::request::LambdaRequest;
use lambda_http::{Error, LambdaEvent, RequestExt, Service};

/// The router as a Lambda service over API Gateway's HTTP API.
#[derive(Debug, Clone)]
pub struct HttpApi(Router);

impl HttpApi {
    /// Serves `router`.
    #[must_use]
    pub fn new(router: Router) -> Self {
        Self(router)
    }
}

impl Service<LambdaEvent<LambdaRequest>> for HttpApi {
    type Response = ApiGatewayV2httpResponse;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<ApiGatewayV2httpResponse, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, event: LambdaEvent<LambdaRequest>) -> Self::Future {
        let LambdaEvent { payload, context } = event;
        let request = lambda_http::Request::from(payload)
            .with_lambda_context(context)
            .map(|body| Body::from(body.to_vec()));
        let mut router = self.0.clone();
        Box::pin(async move {
            let response = match router.call(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await?;
            Ok(gateway_response(lambda_http::http::Response::from_parts(
                parts,
                bytes.to_vec(),
            )))
        })
    }
}

/// An HTTP response as API Gateway's HTTP API takes it: `Set-Cookie` headers as
/// `cookies`, a UTF-8 body as text and anything else in base64.
#[must_use]
pub fn gateway_response(response: lambda_http::http::Response<Vec<u8>>) -> ApiGatewayV2httpResponse {
    let (parts, bytes) = response.into_parts();
    let mut headers = parts.headers;
    let cookies = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok().map(str::to_owned))
        .collect();
    headers.remove(SET_COOKIE);
    let (body, is_base64_encoded) = if bytes.is_empty() {
        (None, false)
    } else {
        match String::from_utf8(bytes) {
            Ok(text) => (Some(GatewayBody::Text(text)), false),
            Err(binary) => (Some(GatewayBody::Binary(binary.into_bytes())), true),
        }
    };
    let mut out = ApiGatewayV2httpResponse::default();
    out.status_code = i64::from(parts.status.as_u16());
    out.headers = headers;
    out.cookies = cookies;
    out.body = body;
    out.is_base64_encoded = is_base64_encoded;
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> lambda_http::http::Response<Vec<u8>> {
        let mut response = lambda_http::http::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(*name, *value);
        }
        response.body(body.to_vec()).unwrap()
    }

    #[test]
    fn json_goes_back_as_text_with_its_status_and_headers() {
        let out = gateway_response(response(
            201,
            &[
                ("content-type", "application/json"),
                ("location", "/orders/1"),
                ("vary", "a"),
                ("vary", "b"),
            ],
            br#"{"total":{"amount":3098}}"#,
        ));
        assert_eq!(out.status_code, 201);
        assert_eq!(out.headers["location"], "/orders/1");
        assert_eq!(out.headers.get_all("vary").iter().count(), 2);
        assert!(!out.is_base64_encoded);
        assert_eq!(
            out.body,
            Some(GatewayBody::Text(r#"{"total":{"amount":3098}}"#.into()))
        );
        assert!(out.cookies.is_empty());
    }

    #[test]
    fn cookies_move_to_their_own_field_and_other_bytes_go_in_base64() {
        let out = gateway_response(response(
            200,
            &[
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("content-type", "image/png"),
            ],
            &[0x89, b'P', b'N', b'G', 0xff],
        ));
        assert_eq!(out.cookies, ["a=1", "b=2"]);
        assert!(out.headers.get("set-cookie").is_none());
        assert!(out.is_base64_encoded);
        assert_eq!(
            out.body,
            Some(GatewayBody::Binary(vec![0x89, b'P', b'N', b'G', 0xff]))
        );
        let wire = serde_json::to_value(&out).unwrap();
        assert_eq!(wire["body"], "iVBOR/8=");
        assert_eq!(wire["isBase64Encoded"], true);
    }

    #[test]
    fn an_empty_body_is_no_body() {
        let out = gateway_response(response(204, &[], b""));
        assert_eq!(
            (out.status_code, out.body, out.is_base64_encoded),
            (204, None, false)
        );
    }
}
