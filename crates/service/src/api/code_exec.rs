//! `POST /api/v0/code-exec`: the token, the body, the payload, the pool,
//! the run, and the answer, refused in codejail-service's order.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use codejail::{CallOptions, SafeExecError, SafeExecOptions};
use http_body_util::{BodyExt, Limited};

use crate::form::{self, FormError};
use crate::payload::{self, PayloadError};

use super::{
    App, PYTHON_LIB, RequestId, authorized, busy, error, json, method_not_allowed, py_json_string,
};

/// What a code-exec request came to, for the log and the metrics.
struct Done {
    response: Response,
    outcome: &'static str,
    slug: Option<String>,
    context: Option<String>,
    killed_by: Option<&'static str>,
    status: Option<i32>,
}

impl Done {
    fn refused(response: Response, outcome: &'static str) -> Done {
        Done {
            response,
            outcome,
            slug: None,
            context: None,
            killed_by: None,
            status: None,
        }
    }
}

pub(super) async fn code_exec(State(app): State<Arc<App>>, request: Request) -> Response {
    let started = Instant::now();
    let id = request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let done = serve_code_exec(&app, request, started).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    app.metrics.request(done.outcome);
    if let Some(reason) = done.killed_by {
        app.metrics.kill(reason);
    }
    tracing::info!(
        request_id = %id,
        slug = done.slug.as_deref().unwrap_or(""),
        limit_context = done.context.as_deref().unwrap_or(""),
        duration_ms = (ms * 1000.0).round() / 1000.0,
        outcome = done.outcome,
        http_status = done.response.status().as_u16(),
        exit_status = done.status,
        killed_by = done.killed_by,
        "code-exec"
    );
    done.response
}

/// codejail-service's `emsg` for code that exited with status 0 before
/// its globals came back: `str()` of the `JSONDecodeError` CodeJail's
/// `json.loads` of the empty stdout raises.
const NO_GLOBALS: &str = "Expecting value: line 1 column 1 (char 0)";

async fn serve_code_exec(app: &Arc<App>, request: Request, started: Instant) -> Done {
    if let Some(r) = authorized(app, &request) {
        return Done::refused(r, "unauthorized");
    }
    match *request.method() {
        Method::POST => {}
        Method::OPTIONS => {
            let mut r = json(
                StatusCode::OK,
                r#"{"name":"Code Exec","description":"Runs Python code in a codejail sandbox (codejail-service's v0 API).","renders":["application/json"],"parses":["application/x-www-form-urlencoded","multipart/form-data"]}"#.to_owned(),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            return Done::refused(r, "options");
        }
        ref other => return Done::refused(method_not_allowed(other), "method_not_allowed"),
    }
    let s = &app.settings;
    if !s.enabled {
        return Done::refused(
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Codejail service not enabled",
            ),
            "disabled",
        );
    }
    if !app.pool.safe() {
        return Done::refused(
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Codejail service is not correctly configured",
            ),
            "not_configured",
        );
    }
    // A place in the queue before the body is read: past it, nothing is
    // buffered.
    let Some(admission) = app.pool.admit() else {
        return Done::refused(busy(), "busy");
    };
    let deadline = started + s.request_deadline;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("Request body larger than {} bytes", s.max_body_bytes),
        )
    };
    if declared.is_some_and(|n| n > s.max_body_bytes) {
        return Done::refused(too_large(), "too_large");
    }
    let limit = usize::try_from(s.max_body_bytes).unwrap_or(usize::MAX);
    let body = Limited::new(request.into_body(), limit);
    let body = match tokio::time::timeout_at(deadline.into(), body.collect()).await {
        Err(_) => {
            return Done::refused(
                error(
                    StatusCode::REQUEST_TIMEOUT,
                    "Request body not received in time",
                ),
                "timeout",
            );
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Done::refused(too_large(), "too_large");
        }
        Ok(Err(_)) => {
            return Done::refused(
                error(StatusCode::BAD_REQUEST, "Request body could not be read"),
                "bad_request",
            );
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    // DRF: an empty body is an empty form, whatever its type.
    let form = if body.is_empty() {
        form::Form::default()
    } else {
        match form::parse(&content_type, body, s.max_form_bytes, s.max_file_bytes).await {
            Ok(form) => form,
            Err(e) => {
                let (status, key, outcome) = match &e {
                    FormError::UnsupportedMediaType(_) => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "detail", "bad_request")
                    }
                    FormError::Multipart(_) | FormError::TooMany { .. } => {
                        (StatusCode::BAD_REQUEST, "detail", "bad_request")
                    }
                    FormError::FieldsTooBig(_) | FormError::FileTooBig { .. } => {
                        (StatusCode::PAYLOAD_TOO_LARGE, "error", "too_large")
                    }
                };
                let body = format!("{{\"{key}\":{}}}", py_json_string(&e.to_string()));
                return Done::refused(json(status, body), outcome);
            }
        }
    };
    let Some(payload_text) = form.field("payload") else {
        return Done::refused(
            error(
                StatusCode::BAD_REQUEST,
                "Missing 'payload' parameter in POST body",
            ),
            "bad_request",
        );
    };
    let params = match payload::parse(payload_text) {
        Ok(p) => p,
        Err(e) => {
            let outcome = match e {
                PayloadError::Parse(_) => "bad_json",
                PayloadError::Schema { .. } => "schema_mismatch",
            };
            tracing::warn!(error = %e, "refused a payload");
            return Done::refused(error(StatusCode::BAD_REQUEST, &e.to_string()), outcome);
        }
    };
    if params
        .python_path
        .iter()
        .any(|p| p.as_str() != Some(PYTHON_LIB))
    {
        return Done::refused(
            error(
                StatusCode::BAD_REQUEST,
                "Only allowed entry in 'python_path' is 'python_lib.zip'",
            ),
            "bad_python_path",
        );
    }
    let files = form.unique_files();
    if files.iter().any(|(name, _)| name != PYTHON_LIB) {
        return Done::refused(
            error(
                StatusCode::BAD_REQUEST,
                "Only allowed name for uploaded file is 'python_lib.zip'",
            ),
            "bad_files",
        );
    }
    if params.unsafely {
        return Done::refused(
            error(
                StatusCode::BAD_REQUEST,
                "Refusing codejail execution with unsafely=true",
            ),
            "unsafely",
        );
    }
    let slug = params.slug.clone();
    let context = params.limit_overrides_context.clone();
    if s.log_code {
        tracing::info!(slug = slug.as_deref().unwrap_or(""), code = %params.code.to_string_lossy(), "submitted code");
    }
    let with_error = |globals: &str, emsg: &str| {
        json(
            StatusCode::OK,
            format!(
                "{{\"globals_dict\":{globals},\"emsg\":{}}}",
                py_json_string(emsg)
            ),
        )
    };
    let done = |response, outcome, killed_by, status| Done {
        response,
        outcome,
        slug: slug.clone(),
        context: context.clone(),
        killed_by,
        status,
    };
    // What CodeJail itself would fail on before running anything.
    let Some(code) = params.code.as_str().map(str::to_owned) else {
        let (at, cp) = params
            .code
            .code_points()
            .enumerate()
            .find(|(_, c)| (0xD800..0xE000).contains(c))
            .unwrap_or((0, 0xD800));
        let emsg = format!(
            "'utf-8' codec can't encode character '\\u{cp:04x}' in position {at}: surrogates not allowed"
        );
        return done(
            with_error(&params.globals_json, &emsg),
            "code_error",
            None,
            None,
        );
    };
    let has_lib = files.iter().any(|(n, _)| n == PYTHON_LIB);
    if !params.python_path.is_empty() && !has_lib {
        // CodeJail would copy python_lib.zip from its own working
        // directory; this service never stages a file of its own disk.
        let emsg = format!("[Errno 2] No such file or directory: '{PYTHON_LIB}'");
        return done(
            with_error(&params.globals_json, &emsg),
            "code_error",
            None,
            None,
        );
    }
    let options = SafeExecOptions {
        python_path: params
            .python_path
            .iter()
            .map(|_| PYTHON_LIB.into())
            .collect(),
        call: CallOptions {
            extra_files: files
                .into_iter()
                .map(|(name, data)| (name, data.to_vec()))
                .collect(),
            // A context without overrides means the global limits, as
            // for CodeJail: it is not handed on, so that a client's
            // stream of made-up names cannot grow what the facade
            // remembers of unknown contexts.
            limits_context: context.clone().filter(|c| app.contexts.contains(c)),
            slug: slug.clone(),
            cancel: Some(app.pool.cancel.clone()),
            ..CallOptions::default()
        },
    };
    let globals = params.globals_json.clone();
    let metrics_app = app.clone();
    let run = app
        .pool
        .run(admission, deadline, move |warm| {
            let t = Instant::now();
            let r = warm.safe_exec_json_updated(&code, &globals, &options);
            metrics_app.metrics.duration(t.elapsed().as_secs_f64());
            r
        })
        .await;
    match run {
        Err(_) => done(busy(), "busy", None, None),
        Ok(Ok(text)) => done(
            json(StatusCode::OK, format!("{{\"globals_dict\":{text}}}")),
            "success",
            None,
            Some(0),
        ),
        // No interpreter in time, or the stop's cancel before the call
        // started: it never ran, and the client may send it again.
        Ok(Err(SafeExecError::Jail(
            codejail::JailError::Warm(codejail::WarmError::Busy { .. })
            | codejail::JailError::Cancelled,
        ))) => done(busy(), "busy", None, None),
        // The code exited with status 0 before its globals were written
        // (`sys.exit(0)`): codejail-service's emsg is what CodeJail's
        // `json.loads` of the empty stdout raises.
        Ok(Err(SafeExecError::Result(codejail::ResultError::Missing))) => done(
            with_error(&params.globals_json, NO_GLOBALS),
            "code_error",
            None,
            Some(0),
        ),
        Ok(Err(e)) => {
            let result = e.result();
            let killed_by = result.and_then(|r| r.killed_by).map(|k| k.as_str());
            let status = result.map(|r| r.status);
            let outcome = if result.is_some() {
                "code_error"
            } else {
                "setup_error"
            };
            if result.is_none() {
                tracing::error!(error = %e, "the run could not be set up");
            }
            done(
                with_error(&params.globals_json, &e.codejail_message()),
                outcome,
                killed_by,
                status,
            )
        }
    }
}
