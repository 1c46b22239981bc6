//! The routes: `POST /api/v0/code-exec`, `/health/`, `/metrics`, and what
//! Django answers for the rest.
//!
//! `code_exec`: `POST /api/v0/code-exec`, from the token check to the
//! answer, in codejail-service's refusal order.

mod code_exec;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Router, middleware};
use codejail::ServiceSettings;

use crate::metrics::Metrics;
use crate::pool::Pool;

use code_exec::code_exec;

/// The only file name and `python_path` entry codejail-service accepts.
pub const PYTHON_LIB: &str = "python_lib.zip";

/// What every request handler shares.
#[derive(Debug)]
pub struct App {
    /// The pool that runs the code.
    pub pool: Arc<Pool>,
    /// The `[service]` settings.
    pub settings: ServiceSettings,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// The limit contexts the settings give overrides for.
    contexts: std::collections::HashSet<String>,
    next_id: AtomicU64,
    id_prefix: String,
}

impl App {
    /// The shared state of a service; `contexts`: the limit contexts that
    /// have overrides.
    pub fn new(
        pool: Arc<Pool>,
        settings: ServiceSettings,
        contexts: std::collections::HashSet<String>,
    ) -> Arc<App> {
        let metrics = Metrics::new(pool.clone());
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Arc::new(App {
            pool,
            settings,
            metrics,
            contexts,
            next_id: AtomicU64::new(1),
            id_prefix: format!("{:x}-{:x}", std::process::id(), start & 0xff_ffff),
        })
    }
}

/// The request's id: the client's `X-Request-Id` when it is short and
/// plain, else one made here.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The router of the service.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v0/code-exec", any(code_exec))
        .route("/health/", any(health))
        .route("/health", any(append_slash))
        .route("/metrics", any(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), request_id))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    r#"{"error":"Internal error"}"#.to_owned(),
                )
            },
        ))
        .with_state(app)
}

async fn request_id(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: middleware::Next,
) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{}-{}",
                app.id_prefix,
                app.next_id.fetch_add(1, Ordering::Relaxed)
            )
        });
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// A JSON answer with codejail-service's content type.
fn json(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// A string as Python's `json.dumps(..., ensure_ascii=False)` writes it,
/// with `\u2028` and `\u2029` escaped as DRF's renderer does.
pub fn py_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, format!("{{\"error\":{}}}", py_json_string(message)))
}

/// DRF's body for a refused method, with its `Allow`.
fn method_not_allowed(method: &Method) -> Response {
    let mut r = json(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{{\"detail\":{}}}",
            py_json_string(&format!("Method \"{method}\" not allowed."))
        ),
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    r
}

fn busy() -> Response {
    let mut r = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Codejail service is busy; try again",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

/// When a token is configured and the request does not carry it
/// (compared in constant time), the refusal.
fn authorized(app: &App, request: &Request) -> Option<Response> {
    let Some(token) = &app.settings.token else {
        return None;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let refuse = |detail: &str| {
        let mut r = json(
            StatusCode::UNAUTHORIZED,
            format!("{{\"detail\":{}}}", py_json_string(detail)),
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    };
    let Some(given) = given else {
        return Some(refuse("Authentication credentials were not provided."));
    };
    let (a, b) = (given.as_bytes(), token.as_bytes());
    let differ = a.len() != b.len() || a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) != 0;
    differ.then(|| refuse("Invalid token."))
}

async fn health(State(app): State<Arc<App>>) -> Response {
    if app.pool.safe() {
        json(StatusCode::OK, r#"{"status": "OK"}"#.to_owned())
    } else {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"status": "UNAVAILABLE"}"#.to_owned(),
        )
    }
}

/// Django's `APPEND_SLASH`: `/health` is `/health/`.
async fn append_slash(request: Request) -> Response {
    let location = match request.uri().query() {
        Some(q) => format!("/health/?{q}"),
        None => "/health/".to_owned(),
    };
    let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

async fn metrics(State(app): State<Arc<App>>, request: Request) -> Response {
    if let Some(r) = authorized(&app, &request) {
        return r;
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut r = json(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{{\"detail\":{}}}",
                py_json_string(&format!("Method \"{}\" not allowed.", request.method()))
            ),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let mut r = app.metrics.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Django's page for an unknown path (`DEBUG = False`).
async fn not_found() -> Response {
    let mut r = (
        StatusCode::NOT_FOUND,
        Body::from(
            "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n",
        ),
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_written_as_python_and_drf_write_them() {
        assert_eq!(
            py_json_string("a\"b\\c\nd\u{1}é\u{2028}\u{7f}"),
            "\"a\\\"b\\\\c\\nd\\u0001é\\u2028\u{7f}\""
        );
    }
}
