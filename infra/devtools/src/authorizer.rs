//! API Gateway's JWT authorizer, played locally by `orderflow-dev up`.
//!
//! The local stack has its own signing key (RS256, made once and kept in
//! `<state-dir>/<prefix>-auth.json`, readable by its owner only), and `orderflow token`
//! mints tokens with it. On every request to a route of the template's HTTP API, the
//! authorizer does what API Gateway does before Lambda runs:
//! - the route's throttle (`DefaultRouteSettings` / `RouteSettings`): over it, a 429;
//! - `Authorization: Bearer <jwt>`: signature, `iss`, `aud`, `exp` (and `nbf`);
//!   missing or invalid, a 401;
//! - the route's `AuthorizationScopes`: the token's `scope` must hold one; if not, a
//!   403;
//! - then the claims reach the router in the request context API Gateway gives Lambda
//!   (`requestContext.authorizer.jwt.claims` and `.scopes`), so the code that reads the
//!   principal is the code that runs in AWS.
//!
//! Requests to paths that are no route of the API go to the router unauthenticated,
//! as API Gateway answers them with a 404 of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use order_api::ApiError;
use orderflow_provision::HttpRoute;
use serde_json::json;

use orderflow_cli::keys::{LocalKeys, Refusal, now_seconds};

/// The answer API Gateway gives for `refusal`.
fn refusal_error(refusal: Refusal) -> ApiError {
    let message = refusal.to_string();
    match refusal {
        Refusal::MissingToken | Refusal::InvalidToken(_) => {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
        Refusal::MissingScope(_) => order_api::access::forbidden(&message),
        Refusal::Throttled => ApiError::too_many_requests(message, 1),
    }
}

/// A token bucket, in thousandths of a request.
#[derive(Debug)]
struct Bucket {
    milli_tokens: u64,
    at: Instant,
}

/// The authorizer: the stack's keys and the template's routes.
#[derive(Debug)]
pub struct LocalAuthorizer {
    keys: LocalKeys,
    routes: Vec<HttpRoute>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl LocalAuthorizer {
    /// An authorizer for `routes` with `keys`.
    #[must_use]
    pub fn new(keys: LocalKeys, routes: Vec<HttpRoute>) -> Self {
        Self {
            keys,
            routes,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the route's bucket.
    fn admit(&self, route: &HttpRoute) -> bool {
        let Some(throttle) = route.throttle else {
            return true;
        };
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let full = throttle.burst.saturating_mul(1000);
        let bucket = buckets.entry(route.key()).or_insert(Bucket {
            milli_tokens: full,
            at: now,
        });
        let elapsed_ms = u64::try_from(now.duration_since(bucket.at).as_millis()).unwrap_or(u64::MAX);
        bucket.milli_tokens = bucket
            .milli_tokens
            .saturating_add(elapsed_ms.saturating_mul(throttle.rate))
            .min(full);
        bucket.at = now;
        if bucket.milli_tokens >= 1000 {
            bucket.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// What API Gateway decides about `request` before Lambda runs: `Ok` with the
    /// request context to hand on, or the refusal.
    fn authorize(
        &self,
        route: &HttpRoute,
        request: &Request,
    ) -> Result<lambda_http::request::RequestContext, Refusal> {
        if !self.admit(route) {
            return Err(Refusal::Throttled);
        }
        let token = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::MissingToken)?;
        let (claims, scopes) = self.keys.verify(token, &route.scopes)?;
        let context = json!({
            "routeKey": route.key(),
            "stage": "$default",
            "requestId": uuid::Uuid::now_v7().to_string(),
            "apiId": "local",
            "domainName": "localhost",
            "timeEpoch": now_seconds().saturating_mul(1000),
            "http": {
                "method": request.method().as_str(),
                "path": request.uri().path(),
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "authorizer": {"jwt": {"claims": claims, "scopes": scopes}},
        });
        serde_json::from_value(context)
            .map(lambda_http::request::RequestContext::ApiGatewayV2)
            .map_err(|e| Refusal::InvalidToken(format!("claims: {e}")))
    }
}

/// The middleware: authorizes every request to a route of the API, as API Gateway
/// does, and hands the claims on in the request context.
pub async fn authorize(
    axum::extract::State(authorizer): axum::extract::State<Arc<LocalAuthorizer>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let route = authorizer
        .routes
        .iter()
        .find(|r| r.matches(&method, request.uri().path()));
    let Some(route) = route else {
        return next.run(request).await;
    };
    // Claims come only from the authorizer, never from the client.
    request
        .extensions_mut()
        .remove::<lambda_http::request::RequestContext>();
    match authorizer.authorize(route, &request) {
        Ok(context) => {
            request.extensions_mut().insert(context);
            next.run(request).await
        }
        Err(refusal) => {
            let mut response = refusal_error(refusal.clone()).into_response();
            if matches!(refusal, Refusal::MissingToken | Refusal::InvalidToken(_)) {
                response
                    .headers_mut()
                    .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            }
            response
        }
    }
}

/// `router` behind the local authorizer.
pub fn protect(router: axum::Router, authorizer: Arc<LocalAuthorizer>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(authorizer, authorize))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use std::time::Duration;

    use orderflow_cli::keys::Identity;

    use super::*;

    fn keys() -> LocalKeys {
        let dir = std::env::temp_dir().join(format!("orderflow-auth-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        LocalKeys::load_or_create(&dir, "t", &Identity::default()).unwrap()
    }

    #[test]
    fn a_route_bucket_lets_the_burst_through_then_refills_at_the_rate() {
        let route = HttpRoute {
            method: "POST".into(),
            path: "/orders".into(),
            scopes: Vec::new(),
            throttle: Some(orderflow_provision::Throttle { burst: 3, rate: 1000 }),
        };
        let authorizer = LocalAuthorizer::new(keys(), vec![route.clone()]);
        let admitted = (0..3).filter(|_| authorizer.admit(&route)).count();
        assert_eq!(admitted, 3);
        std::thread::sleep(Duration::from_millis(5));
        assert!(authorizer.admit(&route), "refilled at 1,000 a second");
        let slow = HttpRoute {
            path: "/products".into(),
            throttle: Some(orderflow_provision::Throttle { burst: 1, rate: 0 }),
            ..route
        };
        assert!(authorizer.admit(&slow));
        assert!(!authorizer.admit(&slow), "no refill at a rate of 0");
    }
}
