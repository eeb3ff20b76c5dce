//! API Gateway's JWT authorizer, played locally by `orderflow dev`.
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

mod keys;

use keys::now_seconds;
pub use keys::{
    Identity, LOCAL_CUSTOMERS_CLIENT, LOCAL_ISSUER, LOCAL_OPERATORS_CLIENT, LocalKeys, Subject, key_path,
    write_owner_only,
};

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    #[error("no bearer token: send Authorization: Bearer <token> (mint one with `orderflow token`)")]
    MissingToken,
    /// The token is not one this stack issued, or no longer valid.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// A valid token without the scope the route needs.
    #[error("this route needs the {0} scope")]
    MissingScope(String),
    /// Over the route's throttle.
    #[error("too many requests on this route; retry in a second")]
    Throttled,
}

impl Refusal {
    fn into_error(self) -> ApiError {
        let message = self.to_string();
        match self {
            Self::MissingToken | Self::InvalidToken(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            }
            Self::MissingScope(_) => order_api::access::forbidden(&message),
            Self::Throttled => ApiError::too_many_requests(message, 1),
        }
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
            let mut response = refusal.clone().into_error().into_response();
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

    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, Header};
    use order_api::access::OPERATOR_SCOPE;
    use serde_json::Value;

    use super::*;

    fn keys(dir: &Path) -> LocalKeys {
        LocalKeys::load_or_create(dir, "t", &Identity::default()).unwrap()
    }

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("orderflow-auth-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn operator_scope() -> Vec<String> {
        vec![OPERATOR_SCOPE.to_owned()]
    }

    #[test]
    fn a_minted_token_verifies_with_its_claims_as_api_gateway_hands_them_on() {
        let keys = keys(&dir());
        let token = keys
            .mint(&Subject::Customer("c-1".into()), Duration::from_secs(60))
            .unwrap();
        let (claims, scopes) = keys.verify(&token, &[]).unwrap();
        assert_eq!(claims["sub"], "c-1");
        assert_eq!(claims["iss"], LOCAL_ISSUER);
        assert!(claims["exp"].parse::<i64>().is_ok(), "numbers arrive as text");
        assert!(scopes.is_empty());
        let operator = keys
            .mint(&Subject::Operator("ops-7".into()), Duration::from_secs(60))
            .unwrap();
        let (claims, scopes) = keys.verify(&operator, &operator_scope()).unwrap();
        assert_eq!(claims["sub"], "ops-7");
        assert_eq!(scopes, operator_scope());
        // What the operators' app client issues to a member of the operators' group,
        // the group list flattened as API Gateway does.
        assert_eq!(claims["cognito:groups"], "[orderflow-operators]");
        assert_eq!(claims["client_id"], LOCAL_OPERATORS_CLIENT);
        let (claims, _) = keys.verify(&token, &[]).unwrap();
        assert_eq!(claims["client_id"], LOCAL_CUSTOMERS_CLIENT);
        assert!(!claims.contains_key("cognito:groups"));
    }

    #[test]
    fn every_audience_of_the_list_is_accepted_and_the_settings_follow_the_template() {
        let dir = dir();
        let identity = Identity {
            audience: "customers-client, operators-client".into(),
            groups_claim: "groups".into(),
            operator_group: "ops".into(),
            ..Identity::default()
        };
        let keys = LocalKeys::load_or_create(&dir, "t", &identity).unwrap();
        let mut claims = keys.claims(&Subject::Operator("ops-1".into()), Duration::from_secs(60));
        assert_eq!(claims["aud"], "customers-client");
        assert_eq!(claims["groups"], json!(["ops"]));
        claims["aud"] = json!("operators-client");
        assert!(keys.verify(&keys.sign(&claims).unwrap(), &[]).is_ok());
        claims["aud"] = json!("someone-else");
        assert!(keys.verify(&keys.sign(&claims).unwrap(), &[]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_its_owner_s_alone_whether_new_or_found_open() {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir();
        let path = key_path(&dir, "t");
        let mode = || std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        keys(&dir);
        assert_eq!(mode(), 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        keys(&dir);
        assert_eq!(mode(), 0o600);
    }

    #[test]
    fn expired_wrong_audience_wrong_issuer_wrong_signature_and_missing_scope_are_refused() {
        let dir = dir();
        let keys = keys(&dir);
        let good = keys.claims(&Subject::Customer("c-1".into()), Duration::from_secs(60));
        let with = |name: &str, value: Value| {
            let mut claims = good.clone();
            claims[name] = value;
            keys.sign(&claims).unwrap()
        };
        let invalid = |why: &str| Err(Refusal::InvalidToken(why.into()));
        let expired = with("exp", json!(now_seconds() - 120));
        assert_eq!(keys.verify(&expired, &[]), invalid("expired"));
        let early = with("nbf", json!(now_seconds() + 600));
        assert_eq!(keys.verify(&early, &[]), invalid("not valid yet"));
        assert_eq!(
            keys.verify(&with("aud", json!("someone-else")), &[]),
            invalid("wrong audience")
        );
        assert_eq!(
            keys.verify(&with("iss", json!("https://evil.example/")), &[]),
            invalid("wrong issuer")
        );
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(
            keys.verify(&keys.sign(&no_exp).unwrap(), &[]),
            invalid("a required claim is missing")
        );
        // Another stack's key, with this stack's kid: the signature does not hold.
        let other = LocalKeys::load_or_create(&dir, "other", &Identity::default()).unwrap();
        let mut forged_header = Header::new(Algorithm::RS256);
        forged_header.kid = Some(keys.kid.clone());
        let forged = jsonwebtoken::encode(&forged_header, &good, &other.encoding).unwrap();
        assert_eq!(keys.verify(&forged, &[]), invalid("bad signature"));
        // A changed payload under the original signature.
        let token = keys.sign(&good).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let tampered_claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(
                &json!({"sub": "c-2", "iss": LOCAL_ISSUER, "aud": "orderflow", "exp": now_seconds() + 60}),
            )
            .unwrap(),
        );
        parts[1] = &tampered_claims;
        assert_eq!(keys.verify(&parts.join("."), &[]), invalid("bad signature"));
        // Unsigned ("alg": "none") and garbage.
        let none = format!(
            "{}.{}.",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
            parts[1]
        );
        assert!(matches!(keys.verify(&none, &[]), Err(Refusal::InvalidToken(_))));
        assert!(matches!(
            keys.verify("garbage", &[]),
            Err(Refusal::InvalidToken(_))
        ));
        // A valid customer token on an operator route.
        assert_eq!(
            keys.verify(&keys.sign(&good).unwrap(), &operator_scope()),
            Err(Refusal::MissingScope(OPERATOR_SCOPE.into()))
        );
        assert_eq!(
            keys.verify(
                &with("scope", json!("openid orderflow/operators")),
                &operator_scope()
            ),
            Err(Refusal::MissingScope(OPERATOR_SCOPE.into()))
        );
    }

    #[test]
    fn the_key_is_made_once_and_kept_across_restarts() {
        let dir = dir();
        let first = keys(&dir);
        let token = first
            .mint(&Subject::Customer("c-1".into()), Duration::from_secs(60))
            .unwrap();
        let again = LocalKeys::load(&dir, "t").unwrap();
        assert!(again.verify(&token, &[]).is_ok());
        assert_eq!(first.cursor_key(), again.cursor_key());
        assert!(LocalKeys::load(&dir, "never-started").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_path(&dir, "t"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key file is private to its owner");
        }
    }

    #[test]
    fn a_route_bucket_lets_the_burst_through_then_refills_at_the_rate() {
        let route = HttpRoute {
            method: "POST".into(),
            path: "/orders".into(),
            scopes: Vec::new(),
            throttle: Some(orderflow_provision::Throttle { burst: 3, rate: 1000 }),
        };
        let authorizer = LocalAuthorizer::new(keys(&dir()), vec![route.clone()]);
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
