//! The API's OpenAPI 3.1 description, generated from the same table the router is built
//! from ([`crate::routes::operations`]) and from the types the handlers read and write,
//! so it cannot drift from the code. `functions/order-api/openapi.json` holds it; a
//! test fails when the two differ, and `make contracts` writes it again.

use axum::http::Method;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::access::OPERATOR_SCOPE;

/// What an operation's entry carries besides its route: schemas and examples for the
/// OpenAPI document ([`Documented`]), or nothing ([`Routed`]). The router is built from
/// the same table as `Routed`, so the Lambda function carries no schema code.
pub trait Describe: Clone + Copy + std::fmt::Debug + 'static {
    /// A schema, or nothing.
    type Schema: Clone + Copy + std::fmt::Debug;
    /// A request body example, or nothing.
    type Example: Clone + Copy + std::fmt::Debug;
    /// The schema of `T`.
    fn schema<T: JsonSchema>() -> Self::Schema;
    /// A schema written out.
    fn written(schema: fn(&mut SchemaGenerator) -> Schema) -> Self::Schema;
    /// An example.
    fn example(example: fn() -> Value) -> Self::Example;
}

/// The table as the OpenAPI document reads it.
#[derive(Debug, Clone, Copy)]
pub struct Documented;

impl Describe for Documented {
    type Schema = fn(&mut SchemaGenerator) -> Schema;
    type Example = fn() -> Value;
    fn schema<T: JsonSchema>() -> Self::Schema {
        schema::<T>
    }
    fn written(schema: fn(&mut SchemaGenerator) -> Schema) -> Self::Schema {
        schema
    }
    fn example(example: fn() -> Value) -> Self::Example {
        example
    }
}

/// The table as the router reads it: routes and handlers, no schemas.
#[derive(Debug, Clone, Copy)]
pub struct Routed;

impl Describe for Routed {
    type Schema = ();
    type Example = ();
    fn schema<T: JsonSchema>() -> Self::Schema {}
    fn written(_: fn(&mut SchemaGenerator) -> Schema) -> Self::Schema {}
    fn example(_: fn() -> Value) -> Self::Example {}
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Any signed-in principal: customers (for what is theirs) and operators.
    Everyone,
    /// Only principals with the operator scope.
    Operators,
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    /// In the path.
    Path,
    /// In the query string.
    Query,
    /// A request header.
    Header,
}

/// One parameter of an operation.
#[derive(Debug, Clone, Copy)]
pub struct Param<D: Describe> {
    /// Its name.
    pub name: &'static str,
    /// Where it travels.
    pub location: In,
    /// Whether a request without it is refused.
    pub required: bool,
    /// What it means.
    pub description: &'static str,
    /// Its schema.
    pub schema: D::Schema,
}

/// One answer an operation gives.
#[derive(Debug, Clone, Copy)]
pub struct Answer<D: Describe> {
    /// The HTTP status.
    pub status: u16,
    /// What it means here.
    pub description: &'static str,
    /// The body's schema; errors all share [`ErrorBody`].
    pub body: Option<D::Schema>,
    /// Response headers it carries.
    pub headers: &'static [&'static str],
    /// Operations this answer leads to, and how: `(name, operationId, parameter, where
    /// its value is in this answer)`, as OpenAPI links.
    pub links: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

/// One route and method of the API, as described and as routed.
#[derive(Debug, Clone)]
pub struct Operation<D: Describe> {
    /// The HTTP method.
    pub method: Method,
    /// The path, with `{name}` parameters as the router matches them.
    pub path: &'static str,
    /// The `operationId`.
    pub id: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Who may call it.
    pub audience: Audience,
    /// Its parameters.
    pub params: Vec<Param<D>>,
    /// The request body's schema, when it takes one.
    pub body: Option<D::Schema>,
    /// A request body that works against the local stack's catalog.
    pub example: Option<D::Example>,
    /// The successful answers.
    pub answers: Vec<Answer<D>>,
    /// The error statuses it can answer, besides 401, 429 and 503 which every operation
    /// can.
    pub errors: &'static [u16],
}

/// The schema of `T` for a table entry.
pub fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A successful answer with a body of type `T`.
#[must_use]
pub fn answer<D: Describe, T: JsonSchema>(
    status: u16,
    description: &'static str,
    headers: &'static [&'static str],
) -> Answer<D> {
    Answer {
        status,
        description,
        body: Some(D::schema::<T>()),
        headers,
        links: &[],
    }
}

/// A path parameter.
#[must_use]
pub fn path<D: Describe, T: JsonSchema>(name: &'static str, description: &'static str) -> Param<D> {
    Param {
        name,
        location: In::Path,
        required: true,
        description,
        schema: D::schema::<T>(),
    }
}

/// An optional query parameter.
#[must_use]
pub fn query<D: Describe, T: JsonSchema>(name: &'static str, description: &'static str) -> Param<D> {
    Param {
        name,
        location: In::Query,
        required: false,
        description,
        schema: D::schema::<T>(),
    }
}

/// A request header.
#[must_use]
pub fn header<D: Describe, T: JsonSchema>(
    name: &'static str,
    required: bool,
    description: &'static str,
) -> Param<D> {
    Param {
        name,
        location: In::Header,
        required,
        description,
        schema: D::schema::<T>(),
    }
}

/// Every error the API answers: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Error")]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Machine-readable (`invalid_order`, `order_not_found`, `unavailable`, …).
    pub code: String,
    /// For people; never internal detail. For a bad field it starts with the field.
    pub message: String,
    /// What is to blame: the JSON path of a body member (`shippingAddress.name`,
    /// `items[1].quantity`), or the name of a path or query parameter or header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// What each error status means, for every operation that answers it.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "A bad parameter, header or body member; `field` names it.",
        401 => "No token, or a token that is not valid.",
        403 => "The principal may not do this (the operator scope is missing, or it is another customer's).",
        404 => "No such order, product or route; another customer's order is answered the same way.",
        405 => "The route does not take this method.",
        409 => {
            "The order or product is not in a state that allows this, or a request with this Idempotency-Key is in progress."
        }
        412 => "If-Match names a version the order is no longer at.",
        413 => "The body is larger than 64 KiB.",
        422 => "This Idempotency-Key was used with a different request.",
        429 => {
            "Too many requests: over the route's throttle or, placing, this principal's orders a minute; retry after Retry-After seconds."
        }
        503 => "Something inside is unavailable; retry (with the same Idempotency-Key).",
        _ => "An error.",
    }
}

/// What each response header means.
fn header_description(name: &str) -> (&'static str, Value) {
    match name {
        "ETag" => ("The order's version, for If-Match.", json!({"type": "string"})),
        "Location" => ("Where the created resource lives.", json!({"type": "string"})),
        "Idempotent-Replayed" => (
            "`true` when this is the stored answer to an earlier request with the same key.",
            json!({"type": "string", "enum": ["true"]}),
        ),
        "orderflow-source" => (
            "`read-model` or `event-store`: where the answer was read.",
            json!({"type": "string", "enum": ["read-model", "event-store"]}),
        ),
        "Retry-After" => ("Seconds to wait.", json!({"type": "integer"})),
        _ => ("", json!({"type": "string"})),
    }
}

/// The OpenAPI 3.1 document for `operations`.
#[must_use]
pub fn document(operations: &[Operation<Documented>]) -> Value {
    let mut generator = orderflow_domain::schema::settings()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let error = schema::<ErrorBody>(&mut generator);
    let mut paths = Map::new();
    for op in operations {
        let mut parameters = Vec::new();
        for param in &op.params {
            let location = match param.location {
                In::Path => "path",
                In::Query => "query",
                In::Header => "header",
            };
            parameters.push(json!({
                "name": param.name,
                "in": location,
                "required": param.required,
                "description": param.description,
                "schema": (param.schema)(&mut generator),
            }));
        }
        let mut responses = Map::new();
        for answer in &op.answers {
            let mut response = json!({"description": answer.description});
            if let Some(body) = answer.body {
                response["content"] = json!({"application/json": {"schema": body(&mut generator)}});
            }
            if !answer.links.is_empty() {
                response["links"] = answer
                    .links
                    .iter()
                    .map(|(name, operation, parameter, value)| {
                        (
                            (*name).to_owned(),
                            json!({"operationId": operation, "parameters": {*parameter: value}}),
                        )
                    })
                    .collect::<Map<_, _>>()
                    .into();
            }
            if !answer.headers.is_empty() {
                response["headers"] = answer
                    .headers
                    .iter()
                    .map(|name| {
                        let (description, schema) = header_description(name);
                        (
                            (*name).to_owned(),
                            json!({"description": description, "schema": schema}),
                        )
                    })
                    .collect::<Map<_, _>>()
                    .into();
            }
            responses.insert(answer.status.to_string(), response);
        }
        let mut errors: Vec<u16> = op.errors.iter().copied().chain([401, 429, 503]).collect();
        if op.audience == Audience::Operators {
            errors.push(403);
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            let mut response = json!({
                "description": error_description(status),
                "content": {"application/json": {"schema": error.clone()}},
            });
            if status == 429 {
                response["headers"] = json!({"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}});
            }
            responses.insert(status.to_string(), response);
        }
        let scopes: Vec<&str> = match op.audience {
            Audience::Everyone => vec![],
            Audience::Operators => vec![OPERATOR_SCOPE],
        };
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "security": [{"bearer": scopes}],
            "x-orderflow-audience": match op.audience {
                Audience::Everyone => "customers and operators",
                Audience::Operators => "operators",
            },
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(body) = op.body {
            let mut media = json!({"schema": body(&mut generator)});
            if let Some(example) = op.example {
                media["example"] = example();
            }
            operation["requestBody"] = json!({
                "required": true,
                "content": {"application/json": media},
            });
        }
        let item = paths
            .entry(op.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        item[op.method.as_str().to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "orderflow order API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Place, read and cancel orders; operators move orders through fulfilment and keep the catalog and its stock. Every request carries a JWT bearer token; operators' tokens hold the `orderflow/operator` scope. Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`; in AWS the gateway's own 401 (no or a bad token) is `{\"message\": \"Unauthorized\"}`.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": format!("A JWT from the stack's issuer. Customers' tokens name the customer in their customer-id claim; operators' carry the `{OPERATOR_SCOPE}` scope."),
                },
            },
            "schemas": generator.take_definitions(true),
        },
    })
}

/// `limit`: 1 to [`MAX_PAGE`](crate::paging::MAX_PAGE).
#[derive(Debug)]
pub struct PageLimit;

impl JsonSchema for PageLimit {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PageLimit".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({"type": "integer", "minimum": 1, "maximum": crate::paging::MAX_PAGE})
    }
}

/// `cursor`: what [`Cursors`](crate::paging::Cursors) seals, the position and its tag,
/// each base64url without padding, joined by a dot. Anything else is answered 400.
#[derive(Debug)]
pub struct PageCursor;

impl JsonSchema for PageCursor {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PageCursor".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({"type": "string", "pattern": crate::paging::CURSOR_PATTERN, "maxLength": crate::paging::MAX_CURSOR})
    }
}

/// A page of a customer's orders.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderPage {
    /// Newest first.
    pub orders: Vec<orderflow_domain::order::view::OrderView>,
    /// Pass it as `cursor` for the next page; absent on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// A page of an audit trail.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// In stream order.
    pub events: Vec<orderflow_domain::schema::WireEnvelope>,
    /// Pass it as `cursor` for the next page; absent on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// A page of the catalog.
#[derive(Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogPage {
    /// In SKU order within the page.
    pub products: Vec<crate::products::CatalogItem>,
    /// Pass it as `cursor` for the next page; absent on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}
