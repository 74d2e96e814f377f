//! Authentication as docker does it: credentials, the 401 challenge, the token service, cached
//! tokens.
//!
//! notary-server's `auth.type: token` and registries answer 401 with
//! `Www-Authenticate: Bearer realm="…",service="…",scope="repository:<name>:pull"`; the client
//! gets a token from the realm (docker's token spec) and retries with `Authorization: Bearer`.
//! `Basic realm="…"` is answered with the user name and password.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::BodyError;

/// Registry credentials, as `docker login` stores them.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A user name and password (or personal access token).
    Basic {
        /// The user name.
        username: String,
        /// The password; never logged or shown.
        password: SecretString,
    },
    /// An OAuth2 refresh token from `docker login` (`identitytoken` in config.json).
    IdentityToken(SecretString),
}

impl Credentials {
    /// Which credentials these are, for error messages; never the secret.
    pub(crate) fn describe(credentials: Option<&Self>) -> String {
        match credentials {
            None => "no credentials".into(),
            Some(Self::Basic { username, .. }) => format!("user {username:?} with a password"),
            Some(Self::IdentityToken(_)) => "the identity token from docker login".into(),
        }
    }
}

/// Docker's token spec asks clients to name themselves in refresh-token requests.
const CLIENT_ID: &str = "tufa";

/// Token responses are small JWTs; a cap keeps a broken realm from filling memory.
const TOKEN_MAX_LEN: u64 = 1 << 20;

/// One authentication scheme offered by a `Www-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Get a token from `realm` for `service` and `scope`.
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    /// Send the user name and password.
    Basic,
}

impl Challenge {
    /// Parses one `Www-Authenticate` value; `None` for schemes tufa cannot answer.
    pub(crate) fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((header, ""));
        let params = parse_params(rest)?;
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            Some(Self::Bearer {
                realm: param("realm")?,
                service: param("service"),
                scope: param("scope"),
            })
        } else if scheme.eq_ignore_ascii_case("basic") {
            Some(Self::Basic)
        } else {
            None
        }
    }

    /// The challenge to answer among all `Www-Authenticate` values: Bearer before Basic.
    pub(crate) fn pick<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Option<Self> {
        values
            .filter_map(|v| v.to_str().ok())
            .filter_map(Self::parse)
            .min_by_key(|c| matches!(c, Self::Basic))
    }
}

/// Splits `k=v, k="quoted, \"v\""` into pairs; `None` when the syntax is broken.
fn parse_params(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| *c == ',' || c.is_ascii_whitespace())
        {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_ascii_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// Authorization header values by scope, shared by every repository of one client.
#[derive(Default)]
pub(crate) struct TokenCache {
    by_scope: Mutex<HashMap<String, SecretString>>,
}

impl TokenCache {
    /// The scope under which a Basic answer is kept: it is good for every scope.
    const BASIC: &'static str = "";

    /// The `Authorization` value to try first for `scope`.
    pub(crate) fn lookup(&self, scope: &str) -> Option<SecretString> {
        let map = self.by_scope.lock().unwrap_or_else(|e| e.into_inner());
        map.get(scope).or_else(|| map.get(Self::BASIC)).cloned()
    }

    /// Remembers a bearer `Authorization` value for `scope`.
    pub(crate) fn store(&self, scope: &str, value: SecretString) {
        self.by_scope
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(scope.to_owned(), value);
    }

    /// Remembers that the server takes Basic auth.
    pub(crate) fn store_basic(&self, value: SecretString) {
        self.store(Self::BASIC, value);
    }
}

/// `Basic base64(user:password)`, or `None` when the credentials are not a password.
pub(crate) fn basic_value(credentials: Option<&Credentials>) -> Option<SecretString> {
    match credentials? {
        Credentials::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose_secret());
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
            Some(SecretString::from(format!("Basic {encoded}")))
        }
        Credentials::IdentityToken(_) => None,
    }
}

/// An `Authorization` header that HTTP debug output will not show.
pub(crate) fn header_value(value: &SecretString) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value.expose_secret()).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// Why no token was had from the token service.
#[derive(Debug)]
pub(crate) enum TokenFailure {
    /// The token service refused the credentials (401/403).
    Refused,
    /// Anything else, in words.
    Failed(String),
}

/// Gets a token for `scope` from the realm of a Bearer challenge, as docker's token spec says:
/// GET with Basic credentials (or none), or POST an identity token as an OAuth2 refresh token.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scope: &str,
    credentials: Option<&Credentials>,
    timeout: std::time::Duration,
) -> Result<SecretString, TokenFailure> {
    let broken = |e: reqwest::Error| {
        if e.is_timeout() && !e.is_connect() {
            TokenFailure::Failed(format!(
                "it did not answer within {}, the most tufa gives one request ({}=SECONDS \
                 allows more)",
                super::deadline::seconds(timeout),
                super::TIMEOUT_VAR
            ))
        } else {
            TokenFailure::Failed(super::innermost(&e))
        }
    };
    let mut url = Url::parse(realm)
        .map_err(|e| TokenFailure::Failed(format!("the realm is not a URL ({e})")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(TokenFailure::Failed(
            "the realm is not an http(s) URL".into(),
        ));
    }
    let request = match credentials {
        Some(Credentials::IdentityToken(token)) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token");
            if let Some(service) = service {
                form.append_pair("service", service);
            }
            form.append_pair("scope", scope);
            form.append_pair("client_id", CLIENT_ID);
            form.append_pair("refresh_token", token.expose_secret());
            http.post(url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(form.finish())
        }
        other => {
            {
                let mut query = url.query_pairs_mut();
                if let Some(service) = service {
                    query.append_pair("service", service);
                }
                query.append_pair("scope", scope);
                if let Some(Credentials::Basic { username, .. }) = other {
                    query.append_pair("account", username);
                }
            }
            let request = http.get(url);
            match basic_value(other).as_ref().and_then(header_value) {
                Some(v) => request.header(AUTHORIZATION, v),
                None => request,
            }
        }
    };
    let response = request.send().await.map_err(broken)?;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(TokenFailure::Refused);
    }
    let body = super::read_at_most(response, TOKEN_MAX_LEN)
        .await
        .map_err(|e| match e {
            BodyError::TooLarge => {
                TokenFailure::Failed(format!("its answer is larger than {TOKEN_MAX_LEN} bytes"))
            }
            BodyError::Broken(e) => broken(e),
        })?;
    if !status.is_success() {
        let e = super::ErrCode::parse(&body);
        return Err(TokenFailure::Failed(format!(
            "HTTP {} {}: {}",
            status.as_u16(),
            e.code,
            e.message
        )));
    }
    #[derive(Deserialize)]
    struct TokenResponse {
        token: Option<String>,
        access_token: Option<String>,
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| TokenFailure::Failed(format!("its answer is not token JSON ({e})")))?;
    parsed
        .token
        .filter(|t| !t.is_empty())
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .map(SecretString::from)
        .ok_or_else(|| TokenFailure::Failed("its answer has no token".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn notary_server_bearer_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example.com/token",service="notary",scope="repository:docker.io/a/b:pull,push""#,
        );
        assert_eq!(
            c,
            Some(bearer(
                "https://auth.example.com/token",
                Some("notary"),
                Some("repository:docker.io/a/b:pull,push")
            ))
        );
    }

    #[test]
    fn unquoted_spaced_and_escaped_params() {
        let c = Challenge::parse(
            r#"bearer  realm = https://a/t , service="svc \"x\"",scope="repository:h:5000/a:*""#,
        );
        assert_eq!(
            c,
            Some(bearer(
                "https://a/t",
                Some(r#"svc "x""#),
                Some("repository:h:5000/a:*")
            ))
        );
        // Order of parameters does not matter, unknown ones are ignored.
        let c = Challenge::parse(r#"Bearer error="invalid_token",realm="https://a/t""#);
        assert_eq!(c, Some(bearer("https://a/t", None, None)));
    }

    #[test]
    fn basic_and_unusable_challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="notary""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Basic"), Some(Challenge::Basic));
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None, "no realm");
        assert_eq!(Challenge::parse(r#"Negotiate abc"#), None);
        assert_eq!(Challenge::parse(r#"Bearer realm="open"#), None);
        assert_eq!(Challenge::parse(""), None);
    }

    #[test]
    fn bearer_is_preferred_over_basic() {
        let values = [
            HeaderValue::from_static(r#"Basic realm="x""#),
            HeaderValue::from_static(r#"Bearer realm="https://a/t""#),
        ];
        assert_eq!(
            Challenge::pick(values.iter()),
            Some(bearer("https://a/t", None, None))
        );
    }

    #[test]
    fn cache_falls_back_to_basic() {
        let cache = TokenCache::default();
        assert!(cache.lookup("repository:a:pull").is_none());
        cache.store_basic(SecretString::from("Basic eA=="));
        assert_eq!(
            cache.lookup("repository:a:pull").unwrap().expose_secret(),
            "Basic eA=="
        );
        cache.store("repository:a:pull", SecretString::from("Bearer t"));
        assert_eq!(
            cache.lookup("repository:a:pull").unwrap().expose_secret(),
            "Bearer t"
        );
    }

    #[test]
    fn basic_value_encodes_user_and_password() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: SecretString::from("s3cret"),
        };
        assert_eq!(
            basic_value(Some(&c)).unwrap().expose_secret(),
            "Basic YWxpY2U6czNjcmV0"
        );
        let v = header_value(&basic_value(Some(&c)).unwrap()).unwrap();
        assert!(v.is_sensitive());
        assert!(basic_value(Some(&Credentials::IdentityToken(SecretString::from("t")))).is_none());
    }

    #[test]
    fn credentials_are_described_without_secrets() {
        let c = Credentials::Basic {
            username: "alice".into(),
            password: SecretString::from("hunter2"),
        };
        let d = Credentials::describe(Some(&c));
        assert!(d.contains("alice") && !d.contains("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
        let t = Credentials::IdentityToken(SecretString::from("zq9-refresh"));
        assert!(!Credentials::describe(Some(&t)).contains("zq9"));
        assert!(!format!("{t:?}").contains("zq9"));
    }
}
