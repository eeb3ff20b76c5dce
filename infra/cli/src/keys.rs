//! The local stack's token issuer: its RS256 key, made once and kept readable by its
//! owner only, the tokens `orderflow token` mints with it, and their verification as
//! API Gateway's JWT authorizer verifies them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use order_api::access::OPERATOR_SCOPE;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

/// The issuer of local tokens.
pub const LOCAL_ISSUER: &str = "https://orderflow.local/";

/// The key file of a local stack.
#[must_use]
pub fn key_path(state_dir: &Path, prefix: &str) -> PathBuf {
    state_dir.join(format!("{prefix}-auth.json"))
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyFile {
    kid: String,
    issuer: String,
    audience: String,
    customer_id_claim: String,
    #[serde(default)]
    groups_claim: String,
    #[serde(default)]
    operator_group: String,
    /// PKCS#8, DER, base64.
    private_key: String,
    /// The cursor signing key, base64.
    cursor_key: String,
    /// The key the customers' data keys are wrapped with (KMS's stand-in), base64;
    /// made on first use, so a file from before it gains one.
    #[serde(default)]
    wrapping_key: String,
}

/// Who a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A customer, by customer id.
    Customer(String),
    /// An operator, by name.
    Operator(String),
}

/// The app client a local customer's token comes from (Cognito's `client_id`).
pub const LOCAL_CUSTOMERS_CLIENT: &str = "orderflow-customers";

/// The app client a local operator's token comes from.
pub const LOCAL_OPERATORS_CLIENT: &str = "orderflow-operators";

/// How the stack reads identities, from the template's parameters: the audiences its
/// authorizer accepts (`JwtAudience`, comma-separated), the customer id claim
/// (`CustomerIdClaim`), the groups claim (`GroupsClaim`) and the operators' group
/// (`OperatorGroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `JwtAudience`: one audience, or several separated by commas.
    pub audience: String,
    /// `CustomerIdClaim`.
    pub customer_id_claim: String,
    /// `GroupsClaim`.
    pub groups_claim: String,
    /// `OperatorGroup`.
    pub operator_group: String,
}

/// The local stack's keys.
#[derive(Clone)]
pub struct LocalKeys {
    kid: String,
    issuer: String,
    audience: String,
    customer_id_claim: String,
    groups_claim: String,
    operator_group: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    cursor_key: Vec<u8>,
    wrapping_key: Vec<u8>,
}

/// Seconds since the epoch, as a token's `iat`, `nbf` and `exp` count them.
#[must_use]
pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn read_key_file(path: &Path) -> anyhow::Result<KeyFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write_key_file(path: &Path, file: &KeyFile) -> anyhow::Result<()> {
    write_owner_only(path, &serde_json::to_string_pretty(file)?)
}

/// Writes `text` to `path` readable and writable by its owner only (0600), whether the
/// file is new or was there with wider permissions.
///
/// # Errors
/// When the directory or the file cannot be made or written.
pub fn write_owner_only(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut opened = options.open(path)?;
    // `mode` applies only when the file is created: an existing one is narrowed here.
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    std::io::Write::write_all(&mut opened, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            audience: "orderflow".to_owned(),
            customer_id_claim: order_api::access::DEFAULT_CUSTOMER_ID_CLAIM.to_owned(),
            groups_claim: order_api::access::DEFAULT_GROUPS_CLAIM.to_owned(),
            operator_group: order_api::access::DEFAULT_OPERATOR_GROUP.to_owned(),
        }
    }
}

impl std::fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeys")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl LocalKeys {
    /// The keys of the stack whose state is in `state_dir`, made on first use; the
    /// identity settings are brought up to date with the template's.
    ///
    /// # Errors
    /// When the file cannot be read, written, or parsed.
    pub fn load_or_create(state_dir: &Path, prefix: &str, identity: &Identity) -> anyhow::Result<Self> {
        let path = key_path(state_dir, prefix);
        let mut file = if path.exists() {
            read_key_file(&path)?
        } else {
            let pair = KeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| anyhow::anyhow!("generating an RSA key failed"))?;
            let der = pair
                .as_der()
                .map_err(|_| anyhow::anyhow!("encoding the RSA key failed"))?;
            let mut cursor_key = [0_u8; 32];
            aws_lc_rs::rand::fill(&mut cursor_key).map_err(|_| anyhow::anyhow!("no randomness"))?;
            KeyFile {
                kid: format!("local-{}", uuid::Uuid::now_v7().simple()),
                issuer: LOCAL_ISSUER.to_owned(),
                audience: String::new(),
                customer_id_claim: String::new(),
                groups_claim: String::new(),
                operator_group: String::new(),
                private_key: STANDARD.encode(der.as_ref()),
                cursor_key: STANDARD.encode(cursor_key),
                wrapping_key: String::new(),
            }
        };
        if file.wrapping_key.is_empty() {
            let mut wrapping_key = [0_u8; 32];
            aws_lc_rs::rand::fill(&mut wrapping_key).map_err(|_| anyhow::anyhow!("no randomness"))?;
            file.wrapping_key = STANDARD.encode(wrapping_key);
        }
        let fresh = (
            &identity.audience,
            &identity.customer_id_claim,
            &identity.groups_claim,
            &identity.operator_group,
        );
        if (
            &file.audience,
            &file.customer_id_claim,
            &file.groups_claim,
            &file.operator_group,
        ) != fresh
        {
            identity.audience.clone_into(&mut file.audience);
            identity.customer_id_claim.clone_into(&mut file.customer_id_claim);
            identity.groups_claim.clone_into(&mut file.groups_claim);
            identity.operator_group.clone_into(&mut file.operator_group);
        }
        // Written every time: a file from before these settings, or one whose mode was
        // loosened, comes back with its owner's permissions only.
        write_key_file(&path, &file)?;
        Self::from_file(file)
    }

    /// The keys `orderflow-dev up` made for this stack.
    ///
    /// # Errors
    /// When there are none yet (start `make dev` first) or the file is unreadable.
    pub fn load(state_dir: &Path, prefix: &str) -> anyhow::Result<Self> {
        let path = key_path(state_dir, prefix);
        anyhow::ensure!(
            path.exists(),
            "no signing key for the local stack {prefix:?} at {}: start it first (`make dev`, or `orderflow-dev up --prefix {prefix}`), from the project root",
            path.display()
        );
        Self::from_file(read_key_file(&path)?)
    }

    fn from_file(file: KeyFile) -> anyhow::Result<Self> {
        let der = STANDARD
            .decode(&file.private_key)
            .context("the private key is not base64")?;
        let pair =
            KeyPair::from_pkcs8(&der).map_err(|e| anyhow::anyhow!("the private key is unusable: {e}"))?;
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&der)
        );
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).context("loading the signing key")?;
        let public = aws_lc_rs::signature::KeyPair::public_key(&pair);
        let decoding = DecodingKey::from_rsa_raw_components(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        );
        Ok(Self {
            kid: file.kid,
            issuer: file.issuer,
            audience: file.audience,
            customer_id_claim: file.customer_id_claim,
            groups_claim: file.groups_claim,
            operator_group: file.operator_group,
            encoding,
            decoding,
            cursor_key: STANDARD
                .decode(&file.cursor_key)
                .context("the cursor key is not base64")?,
            wrapping_key: STANDARD
                .decode(&file.wrapping_key)
                .context("the wrapping key is not base64")?,
        })
    }

    /// The key the local API signs its cursors with.
    #[must_use]
    pub fn cursor_key(&self) -> &[u8] {
        &self.cursor_key
    }

    /// The key the local stack wraps the customers' data keys with, where AWS uses the
    /// stack's KMS key.
    ///
    /// # Errors
    /// When the file's key is not 32 bytes.
    pub fn key_wrapping(&self) -> anyhow::Result<orderflow_adapters::personal::KeyWrapping> {
        let key = orderflow_app::personal::DataKey::from_bytes(&self.wrapping_key)
            .map_err(|e| anyhow::anyhow!("the wrapping key: {e}"))?;
        Ok(orderflow_adapters::personal::KeyWrapping::Local(
            orderflow_adapters::personal::LocalKeyWrap::new(key),
        ))
    }

    /// The audiences the authorizer accepts; a token carries the first.
    fn audiences(&self) -> Vec<&str> {
        self.audience
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect()
    }

    /// The claims of a token for `subject`, valid for `ttl`: what the stack's identity
    /// provider would issue through the customers' app client, or for an operator
    /// through the operators' client to a member of the operators' group.
    #[must_use]
    pub fn claims(&self, subject: &Subject, ttl: Duration) -> Value {
        let now = now_seconds();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audiences().first().copied().unwrap_or_default(),
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            "jti": uuid::Uuid::now_v7().to_string(),
            "token_use": "access",
        });
        match subject {
            Subject::Customer(id) => {
                claims["sub"] = json!(id);
                claims["client_id"] = json!(LOCAL_CUSTOMERS_CLIENT);
                if !self.customer_id_claim.is_empty() {
                    claims[self.customer_id_claim.as_str()] = json!(id);
                }
            }
            Subject::Operator(name) => {
                claims["sub"] = json!(name);
                claims["client_id"] = json!(LOCAL_OPERATORS_CLIENT);
                claims["scope"] = json!(OPERATOR_SCOPE);
                if !self.groups_claim.is_empty() {
                    claims[self.groups_claim.as_str()] = json!([self.operator_group]);
                }
            }
        }
        claims
    }

    /// A signed token for `subject`, valid for `ttl`.
    ///
    /// # Errors
    /// When signing fails.
    pub fn mint(&self, subject: &Subject, ttl: Duration) -> anyhow::Result<String> {
        self.sign(&self.claims(subject, ttl))
    }

    /// Signs any claims with this stack's key (tests use it for tokens that must fail).
    ///
    /// # Errors
    /// When signing fails.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing a token")
    }

    /// Verifies `token` as API Gateway's JWT authorizer would for a route that needs
    /// one of `scopes` (none: any valid token): its claims, as API Gateway hands them
    /// to Lambda (every value a string), and its scopes.
    ///
    /// # Errors
    /// [`Refusal::InvalidToken`], [`Refusal::MissingScope`].
    pub fn verify(
        &self,
        token: &str,
        scopes: &[String],
    ) -> Result<(HashMap<String, String>, Vec<String>), Refusal> {
        let invalid = |why: &str| Refusal::InvalidToken(why.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(invalid("not signed by this stack's key"));
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences());
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &self.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                invalid(match e.kind() {
                    ErrorKind::ExpiredSignature => "expired",
                    ErrorKind::ImmatureSignature => "not valid yet",
                    ErrorKind::InvalidIssuer => "wrong issuer",
                    ErrorKind::InvalidAudience => "wrong audience",
                    ErrorKind::InvalidSignature => "bad signature",
                    ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                    _ => "malformed",
                })
            })?;
        let granted: Vec<String> = data
            .claims
            .get("scope")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if let Some(first) = scopes.first()
            && !scopes.iter().any(|s| granted.contains(s))
        {
            return Err(Refusal::MissingScope(first.clone()));
        }
        let claims = data
            .claims
            .into_iter()
            .map(|(name, value)| {
                let text = match value {
                    Value::String(s) => s,
                    // API Gateway flattens lists as "[a b]".
                    Value::Array(items) => format!(
                        "[{}]",
                        items
                            .iter()
                            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    other => other.to_string(),
                };
                (name, text)
            })
            .collect();
        Ok((claims, granted))
    }
}

impl LocalKeys {
    /// The operator `token` names, by the API's own rule (the operator scope and the
    /// operators' group, `order_api::access`): `None` for anything else, a valid
    /// customer's token included.
    #[must_use]
    pub fn operator(&self, token: &str) -> Option<String> {
        let (claims, scopes) = self.verify(token, &[OPERATOR_SCOPE.to_owned()]).ok()?;
        let config = order_api::access::PrincipalClaims {
            customer_id_claim: self.customer_id_claim.clone(),
            groups_claim: self.groups_claim.clone(),
            operator_group: self.operator_group.clone(),
        };
        match order_api::access::Principal::from_claims(&claims, Some(&scopes), &config) {
            Ok(order_api::access::Principal::Operator(name)) => Some(name),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, Header};
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
}
