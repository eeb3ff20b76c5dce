//! Who is calling, and what they may do: the one place the API decides authorization.
//!
//! API Gateway's JWT authorizer (or, locally, `orderflow-dev up` playing it) has verified
//! the token before a handler runs; what reaches the code is the request context with
//! the token's claims. From them comes a [`Principal`]:
//! - an **operator**: the token's scopes (or its `scope` claim) hold
//!   [`OPERATOR_SCOPE`] **and** its groups claim (`GroupsClaim`, `cognito:groups` by
//!   default) names the operators' group (`OperatorGroup`);
//! - otherwise a **customer**, whose customer id is the claim the template parameter
//!   `CustomerIdClaim` names (`sub` by default).
//!
//! The scope alone never makes an operator: identity providers grant scopes per app
//! client, so a user who can sign in through the client that offers the scope could
//! ask for it, while group membership is granted by an administrator only
//! (`docs/decisions/operator-identity.md`). A token that carries the scope without the
//! group is read as the customer it names.
//!
//! Handlers ask [`authorize`] about an [`Action`] and act on the [`Decision`]; no
//! handler compares principals itself. An order that is not the caller's is answered
//! exactly as one that does not exist (the same 404, after the same reads), so the
//! API is no oracle for other customers' order ids.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;
use orderflow_domain::CustomerId;

use crate::error::ApiError;

/// The OAuth scope that makes a principal an operator.
pub const OPERATOR_SCOPE: &str = "orderflow/operator";

/// The claim that carries the customer id unless configured otherwise.
pub const DEFAULT_CUSTOMER_ID_CLAIM: &str = "sub";

/// The claim that lists a principal's groups unless configured otherwise (Cognito's).
pub const DEFAULT_GROUPS_CLAIM: &str = "cognito:groups";

/// The group whose members are operators unless configured otherwise.
pub const DEFAULT_OPERATOR_GROUP: &str = "orderflow-operators";

/// The caller of a request, from the verified token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// A customer: acts on their own orders only.
    Customer(CustomerId),
    /// An operator (named by the token's `sub`): acts on every order, and alone moves
    /// orders on and changes the catalog.
    Operator(String),
}

impl Principal {
    /// How the audit trail names this principal: `customer:<id>` or `operator:<sub>`.
    #[must_use]
    pub fn actor(&self) -> String {
        match self {
            Self::Customer(id) => format!("customer:{id}"),
            Self::Operator(name) => format!("operator:{name}"),
        }
    }

    /// Reads the principal from an authorizer's claims and scopes, as `config` says.
    ///
    /// # Errors
    /// A 401 when the claims name no principal (no `sub` for an operator, no valid
    /// customer id claim for a customer).
    pub fn from_claims(
        claims: &std::collections::HashMap<String, String>,
        scopes: Option<&[String]>,
        config: &PrincipalClaims,
    ) -> Result<Self, ApiError> {
        let scoped = scopes
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .chain(
                claims
                    .get("scope")
                    .map(String::as_str)
                    .unwrap_or_default()
                    .split_whitespace(),
            )
            .any(|scope| scope == OPERATOR_SCOPE);
        let in_group = claims
            .get(&config.groups_claim)
            .is_some_and(|groups| group_names(groups).any(|g| g == config.operator_group));
        if scoped && in_group {
            return claims
                .get("sub")
                .filter(|sub| !sub.is_empty() && sub.len() <= 128)
                .map(|sub| Self::Operator(sub.clone()))
                .ok_or_else(|| unauthenticated("the token names no operator (sub)"));
        }
        if scoped {
            tracing::info!("the operator scope without the operators' group: read as a customer");
        }
        claims
            .get(&config.customer_id_claim)
            .and_then(|id| CustomerId::parse(id.as_str()).ok())
            .map(Self::Customer)
            .ok_or_else(|| unauthenticated("the token carries no customer id"))
    }
}

/// The names in a groups claim as the authorizer hands it on: API Gateway flattens a
/// JSON list to `[a b]`; a provider may also send one name, or names separated by
/// commas or spaces, or the list as JSON text.
fn group_names(claim: &str) -> impl Iterator<Item = &str> {
    let inner = claim.trim();
    let inner = inner
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(inner);
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .map(|name| name.trim_matches('"'))
        .filter(|name| !name.is_empty())
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// How the API reads principals: which claim holds a customer's id, which claim lists
/// groups and which group makes an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalClaims {
    /// The claim named by `CustomerIdClaim` (`CUSTOMER_ID_CLAIM`).
    pub customer_id_claim: String,
    /// The claim named by `GroupsClaim` (`GROUPS_CLAIM`).
    pub groups_claim: String,
    /// The group named by `OperatorGroup` (`OPERATOR_GROUP`).
    pub operator_group: String,
}

impl Default for PrincipalClaims {
    fn default() -> Self {
        Self {
            customer_id_claim: DEFAULT_CUSTOMER_ID_CLAIM.to_owned(),
            groups_claim: DEFAULT_GROUPS_CLAIM.to_owned(),
            operator_group: DEFAULT_OPERATOR_GROUP.to_owned(),
        }
    }
}

/// Anything that knows how to read principals (the API's state).
pub trait HasPrincipalClaims {
    /// The claim configuration.
    fn principal_claims(&self) -> &PrincipalClaims;
}

impl<S: HasPrincipalClaims + Send + Sync> FromRequestParts<std::sync::Arc<S>> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &std::sync::Arc<S>,
    ) -> Result<Self, Self::Rejection> {
        let jwt = parts
            .extensions
            .get::<RequestContext>()
            .and_then(|context| match context {
                RequestContext::ApiGatewayV2(v2) => v2.authorizer.as_ref()?.jwt.as_ref(),
                _ => None,
            })
            .ok_or_else(|| {
                unauthenticated("no authenticated principal: send Authorization: Bearer <token>")
            })?;
        Self::from_claims(&jwt.claims, jwt.scopes.as_deref(), state.principal_claims())
    }
}

/// What a principal asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// `POST /orders`, for the customer named in the body (if any).
    PlaceOrder {
        /// `customerId` of the body.
        for_customer: Option<&'a CustomerId>,
    },
    /// Read an order or its events (`GET /orders/{id}`, `/events`, `?at=`).
    ReadOrder {
        /// Whose order it is.
        owner: &'a CustomerId,
    },
    /// `POST /orders/{id}/cancel`.
    CancelOrder {
        /// Whose order it is.
        owner: &'a CustomerId,
    },
    /// `GET /customers/{id}/orders`.
    ListOrders {
        /// Whose list.
        of: &'a CustomerId,
    },
    /// Read or erase a customer's personal data (`/customers/{id}/personal-data`).
    PersonalData {
        /// Whose.
        of: &'a CustomerId,
    },
    /// `POST /orders/{id}/status`, and every catalog or stock change.
    Operate,
    /// `GET /products`.
    BrowseCatalog,
}

/// What [`authorize`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; for a placement, on behalf of this customer.
    Allow {
        /// The customer an order is placed for (placements only).
        customer: Option<CustomerId>,
    },
    /// Refused: answer with this error.
    Deny(ApiError),
}

impl Decision {
    /// `Ok` with the placement's customer, or the refusal as an error.
    ///
    /// # Errors
    /// The refusal.
    pub fn into_result(self) -> Result<Option<CustomerId>, ApiError> {
        match self {
            Self::Allow { customer } => Ok(customer),
            Self::Deny(error) => Err(error),
        }
    }
}

/// A 403 `forbidden`.
#[must_use]
pub fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// The rules, in one place.
#[must_use]
pub fn authorize(principal: &Principal, action: Action<'_>) -> Decision {
    let allow = Decision::Allow { customer: None };
    match (principal, action) {
        (Principal::Customer(me), Action::PlaceOrder { for_customer }) => match for_customer {
            None => Decision::Allow {
                customer: Some(me.clone()),
            },
            Some(them) if them == me => Decision::Allow {
                customer: Some(me.clone()),
            },
            Some(_) => Decision::Deny(forbidden("customers place orders for themselves only")),
        },
        (Principal::Operator(_), Action::PlaceOrder { for_customer }) => match for_customer {
            Some(customer) => Decision::Allow {
                customer: Some(customer.clone()),
            },
            None => Decision::Deny(ApiError::invalid_field(
                "missing_customer_id",
                "customerId",
                "required when an operator places an order",
            )),
        },
        (Principal::Customer(me), Action::ReadOrder { owner } | Action::CancelOrder { owner }) => {
            if me == owner {
                allow
            } else {
                // Exactly what an order that does not exist answers.
                Decision::Deny(ApiError::order_not_found())
            }
        }
        (Principal::Customer(me), Action::ListOrders { of }) => {
            if me == of {
                allow
            } else {
                Decision::Deny(forbidden("customers list their own orders only"))
            }
        }
        (Principal::Customer(me), Action::PersonalData { of }) => {
            if me == of {
                allow
            } else {
                Decision::Deny(forbidden("customers read and erase their own personal data only"))
            }
        }
        (Principal::Customer(_), Action::Operate) => Decision::Deny(forbidden(
            "this needs an operator: the orderflow/operator scope and the operators' group",
        )),
        (Principal::Customer(_), Action::BrowseCatalog)
        | (
            Principal::Operator(_),
            Action::ReadOrder { .. }
            | Action::CancelOrder { .. }
            | Action::ListOrders { .. }
            | Action::PersonalData { .. }
            | Action::Operate
            | Action::BrowseCatalog,
        ) => allow,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use std::collections::HashMap;

    use super::*;

    fn customer(id: &str) -> Principal {
        Principal::Customer(CustomerId::parse(id).unwrap())
    }

    fn status(decision: &Decision) -> u16 {
        match decision {
            Decision::Allow { .. } => 200,
            Decision::Deny(error) => error.status.as_u16(),
        }
    }

    #[test]
    fn every_action_for_the_owner_another_customer_and_an_operator() {
        let c1 = CustomerId::parse("c-1").unwrap();
        let owner = customer("c-1");
        let other = customer("c-2");
        let operator = Principal::Operator("ops-7".into());
        let table: [(Action<'_>, [u16; 3]); 7] = [
            (Action::PlaceOrder { for_customer: None }, [200, 200, 400]),
            (
                Action::PlaceOrder {
                    for_customer: Some(&c1),
                },
                [200, 403, 200],
            ),
            (Action::ReadOrder { owner: &c1 }, [200, 404, 200]),
            (Action::CancelOrder { owner: &c1 }, [200, 404, 200]),
            (Action::ListOrders { of: &c1 }, [200, 403, 200]),
            (Action::Operate, [403, 403, 200]),
            (Action::BrowseCatalog, [200, 200, 200]),
        ];
        for (action, expected) in table {
            let got = [&owner, &other, &operator].map(|p| status(&authorize(p, action)));
            assert_eq!(got, expected, "{action:?}");
        }
    }

    #[test]
    fn a_placement_is_for_the_customer_or_the_one_an_operator_names() {
        let c1 = CustomerId::parse("c-1").unwrap();
        assert_eq!(
            authorize(&customer("c-1"), Action::PlaceOrder { for_customer: None }),
            Decision::Allow {
                customer: Some(c1.clone())
            }
        );
        assert_eq!(
            authorize(
                &Principal::Operator("ops".into()),
                Action::PlaceOrder {
                    for_customer: Some(&c1)
                }
            ),
            Decision::Allow { customer: Some(c1) }
        );
    }

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn read(pairs: &[(&str, &str)], config: &PrincipalClaims) -> Result<Principal, ApiError> {
        Principal::from_claims(&claims(pairs), None, config)
    }

    #[test]
    fn principals_come_from_the_configured_claims() {
        let default = PrincipalClaims::default();
        assert_eq!(read(&[("sub", "c-9")], &default).unwrap(), customer("c-9"));
        let custom = PrincipalClaims {
            customer_id_claim: "custom:customer_id".into(),
            ..PrincipalClaims::default()
        };
        assert_eq!(
            read(&[("sub", "abc"), ("custom:customer_id", "c-3")], &custom).unwrap(),
            customer("c-3")
        );
        assert_eq!(
            read(&[("email", "a@example.com")], &default).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(customer("c-1").actor(), "customer:c-1");
        assert_eq!(Principal::Operator("ops-7".into()).actor(), "operator:ops-7");
    }

    #[test]
    fn an_operator_needs_the_scope_and_the_group_an_administrator_grants() {
        let config = PrincipalClaims::default();
        let ops = Principal::Operator("ops-7".into());
        // The group as API Gateway flattens a list, as JSON text, as one name, with others.
        for groups in [
            "[orderflow-operators]",
            "[support orderflow-operators]",
            r#"["support","orderflow-operators"]"#,
            "orderflow-operators",
            "support,orderflow-operators",
        ] {
            let token = [
                ("sub", "ops-7"),
                ("scope", "openid orderflow/operator"),
                ("cognito:groups", groups),
            ];
            assert_eq!(read(&token, &config).unwrap(), ops, "{groups}");
        }
        // The scope in the authorizer's scopes rather than the claim.
        assert_eq!(
            Principal::from_claims(
                &claims(&[("sub", "ops-7"), ("cognito:groups", "[orderflow-operators]")]),
                Some(&[OPERATOR_SCOPE.to_owned()]),
                &config,
            )
            .unwrap(),
            ops
        );
        // A customer who asked the customers' app client for the scope: still a customer.
        let self_granted = [
            ("sub", "c-1"),
            ("scope", "openid orderflow/operator"),
            ("client_id", "customers"),
        ];
        assert_eq!(read(&self_granted, &config).unwrap(), customer("c-1"));
        // The group without the scope (an operator signed in to the shop): a customer.
        let group_only = [("sub", "c-2"), ("cognito:groups", "[orderflow-operators]")];
        assert_eq!(read(&group_only, &config).unwrap(), customer("c-2"));
        // Look-alikes are neither the scope nor the group.
        for (scope, groups) in [
            ("orderflow/operators", "[orderflow-operators]"),
            ("orderflow/operator", "[orderflow-operators-trial]"),
            ("orderflow/operator", "[xorderflow-operators]"),
            ("orderflow/operator", ""),
        ] {
            let token = [("sub", "c-3"), ("scope", scope), ("cognito:groups", groups)];
            assert_eq!(
                read(&token, &config).unwrap(),
                customer("c-3"),
                "{scope} {groups}"
            );
        }
        // The group is read from the configured claim only.
        let okta = PrincipalClaims {
            groups_claim: "groups".into(),
            operator_group: "ops".into(),
            ..PrincipalClaims::default()
        };
        let token = [
            ("sub", "ops-9"),
            ("scope", "orderflow/operator"),
            ("cognito:groups", "[ops]"),
        ];
        assert_eq!(read(&token, &okta).unwrap(), customer("ops-9"));
        let token = [
            ("sub", "ops-9"),
            ("scope", "orderflow/operator"),
            ("groups", "[ops]"),
        ];
        assert_eq!(read(&token, &okta).unwrap(), Principal::Operator("ops-9".into()));
    }
}
