//! What the API tests share: who sends a request, as API Gateway's JWT authorizer hands
//! it to Lambda.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub, reason = "test code")]

use serde_json::json;

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
        Who::Operator(name) => json!({"sub": name, "scope": "openid orderflow/operator"}),
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
