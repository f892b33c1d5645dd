//! Console sign-in: a browser cannot sign requests with SigV4 (an `EventSource` cannot
//! even set a header), so the web console signs in once with an access key id and its
//! secret and then proves who it is with a session cookie.
//!
//! - `POST /console/session` with `{"accessKeyId", "secretAccessKey"}`: the pair is
//!   checked against the IAM store (an active key, its secret compared in constant
//!   time); the answer sets the cookie `berth_session`: a random 256-bit token,
//!   `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when the API is served over TLS,
//!   expiring with the session ([`SESSION_LIFETIME`]). A wrong pair is refused with 403
//!   and nothing is stored. Only `Content-Type: application/json` is taken, which a
//!   cross-site form cannot send.
//! - `DELETE /console/session`: signs out (the session is forgotten, the cookie cleared).
//!
//! Sessions live in the server's memory only, keyed by the token; each holds the access
//! key id it was opened with, and the guard ([`crate::iam_auth`]) resolves that key on
//! every request, so a key deleted or made inactive, or a policy changed, takes effect at
//! once. Nothing of the secret is kept, in the server or in the browser.
//!
//! What it does not do: authorize anything (the guard evaluates the principal's policies
//! for each request, as for a signed one), or outlive the server (a restart signs every
//! console out).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use ring::rand::SecureRandom;
use serde::Deserialize;

use crate::iam_store::Iam;

/// The session cookie's name.
pub const COOKIE: &str = "berth_session";
/// How long a console session lasts after sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// The header a console request that changes something must carry when it is
/// authenticated by the cookie: a cross-site form cannot set it.
pub const CONSOLE_HEADER: &str = "x-berth-console";
/// The sign-in route.
pub const SESSION_PATH: &str = "/console/session";
/// The most sessions held at once; signing in past it forgets the oldest.
const MAX_SESSIONS: usize = 10_000;

struct Session {
    access_key_id: String,
    expires: Instant,
}

/// The console's open sessions, shared by the sign-in routes and the guard.
#[derive(Clone)]
pub struct ConsoleSessions {
    inner: Arc<Mutex<HashMap<String, Session>>>,
    lifetime: Duration,
    /// Whether the cookie is marked `Secure` (the API is served over TLS).
    secure: bool,
}

impl ConsoleSessions {
    pub fn new(secure: bool) -> Self {
        Self::with_lifetime(secure, SESSION_LIFETIME)
    }

    /// Sessions lasting `lifetime` (tests use a short one).
    pub fn with_lifetime(secure: bool, lifetime: Duration) -> Self {
        Self {
            inner: Arc::new(Mutex::new(HashMap::new())),
            lifetime,
            secure,
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `access_key_id`; returns its token.
    pub fn open(&self, access_key_id: &str) -> Result<String, ring::error::Unspecified> {
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut bytes)?;
        let token = berth_iam::hex::encode(&bytes);
        let now = Instant::now();
        let mut s = self.sessions();
        s.retain(|_, v| v.expires > now);
        if s.len() >= MAX_SESSIONS {
            if let Some(oldest) = s
                .iter()
                .min_by_key(|(_, v)| v.expires)
                .map(|(k, _)| k.clone())
            {
                s.remove(&oldest);
            }
        }
        s.insert(
            token.clone(),
            Session {
                access_key_id: access_key_id.to_string(),
                expires: now + self.lifetime,
            },
        );
        Ok(token)
    }

    /// The access key id of the live session `token`; an expired one is forgotten.
    pub fn access_key_of(&self, token: &str) -> Option<String> {
        let mut s = self.sessions();
        match s.get(token) {
            Some(v) if v.expires > Instant::now() => Some(v.access_key_id.clone()),
            Some(_) => {
                s.remove(token);
                None
            }
            None => None,
        }
    }

    /// Forgets the session `token`.
    pub fn close(&self, token: &str) {
        self.sessions().remove(token);
    }

    fn cookie(&self, token: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={token}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Strict{secure}")
    }
}

/// Whether a request needs no authentication: the console's page and assets (`GET`
/// of `/`, `/console` and `/console/...`) and the sign-in route.
pub fn is_public(method: &str, path: &str) -> bool {
    if path == SESSION_PATH {
        return true;
    }
    matches!(method, "GET" | "HEAD")
        && (path == "/" || path == "/console" || path.starts_with("/console/"))
}

/// The session token the request's `Cookie` headers carry, if any.
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

/// Equal bytes, compared in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Clone)]
struct SessionState {
    iam: Iam,
    sessions: ConsoleSessions,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignIn {
    access_key_id: String,
    secret_access_key: String,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"__type": code, "message": message})),
    )
        .into_response()
}

async fn sign_in(
    State(st): State<SessionState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // A cross-site form cannot send JSON, so it cannot sign a browser in either.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "InvalidParameterException",
            "sign-in: Content-Type must be application/json",
        );
    }
    let form: SignIn = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidParameterException",
                &format!("sign-in: a JSON object with accessKeyId and secretAccessKey (strings) is allowed: {e}"),
            )
        }
    };
    let key = match st.iam.authenticate(form.access_key_id.trim()).await {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let Some(key) = key.filter(|k| {
        same_secret(
            k.secret.as_bytes(),
            form.secret_access_key.trim().as_bytes(),
        )
    }) else {
        tracing::info!("console sign-in refused: unknown access key or wrong secret");
        return error(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "Sign-in failed: the access key ID is unknown or inactive, or the secret does not match it.",
        );
    };
    let token = match st.sessions.open(&key.principal.access_key_id) {
        Ok(t) => t,
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServerException",
                "the system's random source failed",
            )
        }
    };
    tracing::info!(principal = %key.principal.arn, "console signed in");
    let mut resp = Json(serde_json::json!({"principal": key.principal.arn})).into_response();
    if let Ok(v) =
        HeaderValue::from_str(&st.sessions.cookie(&token, st.sessions.lifetime.as_secs()))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn sign_out(State(st): State<SessionState>, headers: HeaderMap) -> Response {
    if let Some(token) = token_of(&headers) {
        st.sessions.close(&token);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&st.sessions.cookie("", 0)) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `POST` and `DELETE` [`SESSION_PATH`]. The guard lets them through unauthenticated:
/// signing in is how a console authenticates.
pub fn routes(iam: Iam, sessions: ConsoleSessions) -> Router {
    Router::new()
        .route(SESSION_PATH, post(sign_in).delete(sign_out))
        .with_state(SessionState { iam, sessions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_a_random_token_until_it_expires_or_is_closed() {
        let s = ConsoleSessions::new(false);
        let a = s.open("AKIAEXAMPLE").unwrap();
        let b = s.open("AKIAEXAMPLE").unwrap();
        assert_eq!(a.len(), 64, "256 bits in hex");
        assert_ne!(a, b);
        assert_eq!(s.access_key_of(&a).as_deref(), Some("AKIAEXAMPLE"));
        assert_eq!(s.access_key_of("nope"), None);
        s.close(&a);
        assert_eq!(s.access_key_of(&a), None);
        assert!(s.access_key_of(&b).is_some());
        let short = ConsoleSessions::with_lifetime(false, Duration::ZERO);
        let t = short.open("AKIAEXAMPLE").unwrap();
        assert_eq!(short.access_key_of(&t), None, "expired");
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let plain = ConsoleSessions::new(false).cookie("t", 60);
        assert_eq!(
            plain,
            "berth_session=t; Max-Age=60; Path=/; HttpOnly; SameSite=Strict"
        );
        assert!(ConsoleSessions::new(true)
            .cookie("t", 60)
            .ends_with("; Secure"));
    }

    #[test]
    fn only_the_page_its_assets_and_sign_in_are_public() {
        assert!(is_public("GET", "/console/"));
        assert!(is_public("GET", "/console/app.js"));
        assert!(is_public("GET", "/"));
        assert!(is_public("POST", "/console/session"));
        assert!(is_public("DELETE", "/console/session"));
        assert!(!is_public("POST", "/"), "the AWS front door");
        assert!(!is_public("POST", "/console/app.js"));
        assert!(!is_public("GET", "/v1/whoami"));
        assert!(!is_public("GET", "/v1/events/stream"));
    }

    #[test]
    fn the_token_is_read_among_other_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; berth_session=abc"),
        );
        assert_eq!(token_of(&h).as_deref(), Some("abc"));
        assert_eq!(token_of(&HeaderMap::new()), None);
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }
}
