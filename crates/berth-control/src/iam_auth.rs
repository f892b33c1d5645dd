//! The request guard: every request through the router it wraps must be signed with
//! SigV4 by an active access key, and the key's owner's policies must allow what the
//! request asks. It wraps the whole router ([`guard`]), so routes added later (the AWS
//! front door's `POST /` among them) are guarded too.
//!
//! What a request asks for:
//! - `X-Amz-Target` (the JSON protocols): its action, on `*`
//!   ([`berth_iam::actions::action_for_target`]);
//! - a form body with `Action` and `Version=2015-12-01` (the query protocol): its action,
//!   on `*` ([`berth_iam::actions::action_for_form`]);
//! - otherwise the native route's actions and resources ([`crate::iam_native_actions`]).
//!
//! A handler that decides per resource (the front door, once it has read the body) calls
//! [`IamGuard::authorize`] with the [`Principal`] the guard put in the request's
//! extensions.
//!
//! The web console proves who it is with a session cookie instead of a signature
//! ([`crate::console_session`]): a request without an `Authorization` header whose
//! `berth_session` cookie names a live session is the session's access key's, and is
//! authorized by the same policies. Such a request that changes something (any method
//! but `GET`, `HEAD`, `OPTIONS`) must carry `X-Berth-Console`, which a cross-site form
//! cannot set. The console's page, its assets and the sign-in route itself are let
//! through unauthenticated ([`crate::console_session::is_public`]).
//!
//! `X-Amz-Target` and a form's `Action` name the request's action only at `POST /`, the
//! AWS front door; elsewhere the native route's actions apply whatever headers say. The
//! front door's calls into the native router are in-process and not guarded again: the
//! action checked here, one per AWS operation, is the whole authorization of an AWS
//! request.
//!
//! A request signed with a role session's `ASIA...` key must carry its session token in
//! `X-Amz-Security-Token` ([`crate::iam_sessions`]); a missing or wrong token is
//! `InvalidClientTokenId`, an expired one `ExpiredTokenException` (HTTP 400; the query
//! protocol's `ExpiredToken`, 403), as AWS answers.
//!
//! Refusals are AWS's: HTTP 403 with `MissingAuthenticationToken`,
//! `IncompleteSignature`, `InvalidClientTokenId`, `SignatureDoesNotMatch` or
//! `AccessDeniedException`, as `{"__type", "message"}` with `x-amzn-ErrorType` (or, for a
//! query-protocol request, ELBv2's `<ErrorResponse>` XML, where a policy's refusal is
//! `AccessDenied` as ELBv2 names it). Nothing a refused request
//! asked for is done: the guard answers before any handler runs.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use berth_iam::policy::{access_denied_message, evaluate, Decision};
use berth_iam::sigv4::{self, AuthError};

use crate::console_session::{self, ConsoleSessions};
use crate::error::ApiError;
use crate::iam_sessions::SessionRefusal;
use crate::iam_store::{Iam, KeyForSigning, Principal};

/// The largest request body the guard reads to hash it (a stack file of thousands of
/// resources is a few MiB).
pub const MAX_SIGNED_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Unix seconds now; tests give their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the guard checks requests against.
#[derive(Clone)]
pub struct IamGuard {
    pub iam: Iam,
    clock: Clock,
    sessions: Option<ConsoleSessions>,
}

impl IamGuard {
    pub fn new(iam: Iam) -> Self {
        Self {
            iam,
            clock: Arc::new(|| berth_model::time::now() as i64),
            sessions: None,
        }
    }

    /// The guard accepting the console's session cookies.
    pub fn with_console_sessions(mut self, sessions: ConsoleSessions) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// The guard with another clock (for tests of the skew window).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Whether `principal`'s policies allow `action` on `resource`; the refusal is
    /// `AccessDeniedException` (403) with AWS's message.
    pub fn authorize(principal: &Principal, action: &str, resource: &str) -> Result<(), ApiError> {
        match evaluate(&principal.policies, action, resource) {
            Decision::Allow => Ok(()),
            d => Err(ApiError::new(
                "AccessDeniedException",
                403,
                access_denied_message(&principal.arn, action, resource, d),
            )),
        }
    }
}

/// `router` with every request guarded.
pub fn guard(router: Router, guard: IamGuard) -> Router {
    router.layer(axum::middleware::from_fn_with_state(guard, check))
}

/// Whether the request speaks the query protocol (its errors are XML).
fn is_query_protocol(req: &axum::http::request::Parts) -> bool {
    req.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

fn refusal(code: &str, message: &str, xml: bool) -> Response {
    refusal_with_status(StatusCode::FORBIDDEN, code, message, xml)
}

fn refusal_with_status(status: StatusCode, code: &str, message: &str, xml: bool) -> Response {
    // The query protocol's services (ELBv2) name a policy's refusal `AccessDenied`.
    let code = match code {
        "AccessDeniedException" if xml => "AccessDenied",
        other => other,
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = if xml {
        let body = format!(
            "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            xml_escape(message)
        );
        (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
    } else {
        (
            status,
            axum::Json(serde_json::json!({"__type": code, "message": message})),
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(code) {
        resp.headers_mut().insert("x-amzn-ErrorType", v);
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-RequestId", v);
    }
    resp
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Why a request was refused.
enum Refused {
    Auth(AuthError),
    Denied(ApiError),
    Other(ApiError),
}

async fn check(State(g): State<IamGuard>, req: Request, next: Next) -> Response {
    if console_session::is_public(req.method().as_str(), req.uri().path()) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let xml = is_query_protocol(&parts);
    let body = match axum::body::to_bytes(body, MAX_SIGNED_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                "RequestEntityTooLarge",
                413,
                format!("request body: at most {MAX_SIGNED_BODY_BYTES} bytes"),
            )
            .into_response()
        }
    };
    match authenticate_and_authorize(&g, &parts, &body).await {
        Ok(principal) => {
            parts.extensions.insert(principal);
            next.run(Request::from_parts(parts, Body::from(body))).await
        }
        Err(Refused::Auth(e)) => {
            tracing::info!(
                method = %parts.method,
                path = parts.uri.path(),
                code = e.code(),
                "request refused: not authenticated"
            );
            let (code, status) = if xml {
                (e.query_code(), e.query_status())
            } else {
                (e.code(), e.status())
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
            refusal_with_status(status, code, &e.message(), xml)
        }
        Err(Refused::Denied(e)) => {
            tracing::info!(method = %parts.method, path = parts.uri.path(), "{}", e.message);
            refusal(e.code, &e.message, xml)
        }
        Err(Refused::Other(e)) => e.into_response(),
    }
}

async fn authenticate_and_authorize(
    g: &IamGuard,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<Principal, Refused> {
    let principal = match (
        &g.sessions,
        parts.headers.contains_key(header::AUTHORIZATION),
    ) {
        (Some(sessions), false) if console_session::token_of(&parts.headers).is_some() => {
            session_principal(g, sessions, parts).await?
        }
        _ => signed_principal(g, parts, body).await?,
    };
    for (action, resource) in &needs(parts, body) {
        IamGuard::authorize(&principal, action, resource).map_err(Refused::Denied)?;
    }
    Ok(principal)
}

/// What the request asks for: at `POST /` (the AWS front door) the action its
/// `X-Amz-Target` or form names, on `*`; elsewhere the native route's.
pub fn needs(parts: &axum::http::request::Parts, body: &[u8]) -> Vec<(String, String)> {
    let front_door = parts.method == axum::http::Method::POST && parts.uri.path() == "/";
    let target = parts
        .headers
        .get("x-amz-target")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if front_door {
        if let Some(target) = target {
            return vec![(
                berth_iam::actions::action_for_target(&target)
                    .unwrap_or_else(|| "berth:UnknownTarget".into()),
                "*".to_string(),
            )];
        }
        if let Some(action) = berth_iam::actions::action_for_form(body) {
            return vec![(action, "*".to_string())];
        }
    }
    crate::iam_native_actions::native_needs(parts.method.as_str(), parts.uri.path(), body)
}

/// The principal of a console session cookie (the request has no `Authorization`).
async fn session_principal(
    g: &IamGuard,
    sessions: &ConsoleSessions,
    parts: &axum::http::request::Parts,
) -> Result<Principal, Refused> {
    let token = console_session::token_of(&parts.headers).unwrap_or_default();
    let Some(id) = sessions.access_key_of(&token) else {
        return Err(Refused::Auth(AuthError::MissingAuthenticationToken));
    };
    let safe = matches!(parts.method.as_str(), "GET" | "HEAD" | "OPTIONS");
    if !safe && !parts.headers.contains_key(console_session::CONSOLE_HEADER) {
        return Err(Refused::Denied(ApiError::new(
            "AccessDeniedException",
            403,
            "A console session's request that changes something must carry the X-Berth-Console header.",
        )));
    }
    match g.iam.authenticate(&id).await.map_err(Refused::Other)? {
        Some(KeyForSigning { principal, .. }) => Ok(principal),
        None => {
            sessions.close(&token);
            Err(Refused::Auth(AuthError::InvalidClientTokenId))
        }
    }
}

/// The principal of a SigV4-signed request.
async fn signed_principal(
    g: &IamGuard,
    parts: &axum::http::request::Parts,
    body: &Bytes,
) -> Result<Principal, Refused> {
    let mut headers: Vec<(&str, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // HTTP/2 carries the host as the `:authority` pseudo-header, which is the URI's
    // authority here; SigV4 signs it as `host`.
    if !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            headers.push(("host", authority.to_string()));
        }
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let Some(auth_header) = header("authorization") else {
        return Err(Refused::Auth(AuthError::MissingAuthenticationToken));
    };
    let auth = sigv4::parse_authorization(auth_header).map_err(Refused::Auth)?;
    let computed = sigv4::sha256_hex(body);
    let payload_hash = match header("x-amz-content-sha256") {
        Some(sigv4::UNSIGNED_PAYLOAD) => sigv4::UNSIGNED_PAYLOAD.to_string(),
        Some(given) if !given.eq_ignore_ascii_case(&computed) => {
            return Err(Refused::Auth(AuthError::SignatureDoesNotMatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .into(),
            )))
        }
        _ => computed,
    };
    let req = sigv4::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        payload_hash: &payload_hash,
    };
    let date = sigv4::request_date(&req, auth_header).map_err(Refused::Auth)?;
    let key = if auth.access_key_id.starts_with("ASIA") {
        // A role session: its token (`X-Amz-Security-Token`) says who it is.
        let token = header("x-amz-security-token");
        match g
            .iam
            .authenticate_session(&auth.access_key_id, token, (g.clock)())
            .await
            .map_err(Refused::Other)?
        {
            Ok(key) => key,
            Err(SessionRefusal::Expired) => return Err(Refused::Auth(AuthError::ExpiredToken)),
            Err(SessionRefusal::Invalid) => {
                return Err(Refused::Auth(AuthError::InvalidClientTokenId))
            }
        }
    } else {
        let Some(key) = g
            .iam
            .authenticate(&auth.access_key_id)
            .await
            .map_err(Refused::Other)?
        else {
            return Err(Refused::Auth(AuthError::InvalidClientTokenId));
        };
        key
    };
    sigv4::verify(&req, &auth, date, &key.secret, (g.clock)()).map_err(Refused::Auth)?;
    Ok(key.principal)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod session_tests;
