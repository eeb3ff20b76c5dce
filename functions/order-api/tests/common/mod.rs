//! What the API tests share: who sends a request, as API Gateway's JWT authorizer hands
//! it to Lambda.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    dead_code,
    unreachable_pub,
    reason = "test code"
)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use orderflow_adapters::catalog::Product;
use orderflow_app::Catalog;
use orderflow_domain::{Currency, Money, Sku};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The catalog every API test starts with: `SKU-1` at 12.99 (10 in stock) and `SKU-2`
/// at 5.00 (3 in stock).
pub async fn stock(catalog: &impl Catalog) {
    for (sku, price, stock) in [("SKU-1", 1299, 10), ("SKU-2", 500, 3)] {
        catalog
            .put(&Product::listed(
                Sku::parse(sku).unwrap(),
                format!("Product {sku}"),
                Money::new(price, Currency::parse("USD").unwrap()),
                stock,
            ))
            .await
            .unwrap();
    }
}

/// Who sends a request: what the JWT authorizer verified, or nobody.
#[derive(Debug, Clone, Copy)]
pub enum Who {
    Customer(&'static str),
    Operator(&'static str),
    Nobody,
}

/// The request context API Gateway gives Lambda for `who`'s verified token.
pub fn context(who: Who) -> Option<lambda_http::request::RequestContext> {
    let claims = match who {
        Who::Customer(id) => json!({"sub": id, "iss": "https://issuer.example.com/", "exp": "4102444800"}),
        Who::Operator(name) => json!({
            "sub": name, "scope": "openid orderflow/operator", "cognito:groups": "[orderflow-operators]"
        }),
        Who::Nobody => return None,
    };
    let context: aws_lambda_events::event::apigw::ApiGatewayV2httpRequestContext = serde_json::from_value(json!({
        "routeKey": "$default", "accountId": "123", "stage": "$default", "requestId": "r-1",
        "apiId": "api", "domainName": "x", "domainPrefix": "x", "time": "t", "timeEpoch": 0,
        "http": {"method": "GET", "path": "/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
        "authorizer": {"jwt": {"claims": claims, "scopes": null}}
    }))
    .unwrap();
    Some(lambda_http::request::RequestContext::ApiGatewayV2(context))
}

/// What the API answered: its status, headers and JSON body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Sends `request` through `router`; every answer must be JSON.
pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("not JSON: {bytes:?}"));
    Reply {
        status,
        headers,
        body,
    }
}
