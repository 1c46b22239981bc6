//! Running the request and building the response.

use std::sync::{Arc, Mutex};

use codejail::{
    CallOptions, Confinement, JailCode, JailConfig, JailResult, SafeExecError, SafeExecOptions,
};
use serde_json::{Map, Value, json};

use super::capture::{Capture, Captured};
use super::parent::Parent;
use super::request::{Op, Request, lang, limits};
use super::{Refusal, VERSION, b64, b64_decode, jail_refusal, setup, usage};

pub(super) fn answer(
    request: Request,
    stop: &crate::Stop,
    ready: &mut Option<Parent>,
) -> Result<Value, Refusal> {
    let spec = &request.jail;
    let mut config = JailConfig::new(&spec.bin);
    config.lang = lang(spec.lang.as_ref())?;
    config.user = spec.user.clone();
    config.allow_root_user = spec.allow_root_user;
    config.allow_exec = spec.allow_exec;
    config.apparmor_profile = spec.apparmor_profile.clone();
    if let Some(policy) = &spec.policy {
        config.confinement = policy
            .parse::<Confinement>()
            .map_err(|e| usage(format!("jail policy: {e}")))?;
    }
    if request.unconfined {
        config.confinement = Confinement::Unsafe;
    }
    let limits = limits(&request.limits)?;
    let extra_files = request
        .extra_files
        .iter()
        .map(|(name, data)| Ok((name.clone(), b64_decode(data, "an extra file")?)))
        .collect::<Result<Vec<_>, Refusal>>()?;
    let stdin = match &request.stdin_b64 {
        Some(text) => b64_decode(text, "stdin_b64")?,
        None => Vec::new(),
    };
    if request.op == Op::JailCode
        && (request.globals_json.is_some() || !request.python_path.is_empty())
    {
        return Err(usage(
            "globals_json and python_path belong to safe_exec, not jail_code",
        ));
    }
    if request.op == Op::SafeExec && (!request.argv.is_empty() || !stdin.is_empty()) {
        return Err(usage(
            "argv and stdin_b64 belong to jail_code; safe_exec takes its input in globals_json",
        ));
    }

    let parent = match (spec.jail_parent.as_deref(), ready.take()) {
        (None, Some(parent)) => parent,
        (asked, made) => {
            if let Some(made) = made {
                made.remove();
            }
            Parent::create(asked)?
        }
    };
    config.jail_parent = Some(parent.path.clone());
    let name = spec.name.clone().unwrap_or_else(|| "python".into());
    let captured = Arc::new(Mutex::new(Captured::default()));
    let subscriber = {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(Capture {
                state: captured.clone(),
                parent: parent.path.clone(),
            })
    };
    let outcome = tracing::subscriber::with_default(subscriber, || {
        let jail = codejail::Jail::new(name, config).map_err(setup)?;
        let call = CallOptions {
            files: request.files.clone(),
            extra_files,
            limits_context: None,
            limits,
            slug: request.slug.clone(),
            layers: None,
            cancel: Some(stop.cancel.clone()),
        };
        Ok::<_, Refusal>(match request.op {
            Op::JailCode => {
                let run = JailCode {
                    code: request.code.clone(),
                    argv: request.argv.clone(),
                    stdin,
                    call,
                    ..JailCode::default()
                };
                // An unconfined run is said on every call, as not_safe_exec's is.
                let r = if jail.is_unsafe() {
                    jail.not_safe_jail_code(&run)
                } else {
                    jail.jail_code(&run)
                }
                .map_err(jail_refusal)?;
                Ran::Code(r)
            }
            Op::SafeExec => {
                let code = request.code.clone().unwrap_or_default();
                let globals = request.globals_json.as_deref().unwrap_or("{}");
                let options = SafeExecOptions {
                    python_path: request.python_path.clone(),
                    call,
                };
                match jail.safe_exec_json(&code, globals, &options) {
                    Ok(text) => Ran::Exec(Ok(text)),
                    Err(SafeExecError::Jail(e)) => return Err(jail_refusal(e)),
                    Err(e) => Ran::Exec(Err(e)),
                }
            }
        })
    });
    parent.remove();
    let ran = outcome?;
    let captured = std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
    let mut response = Map::new();
    response.insert("v".into(), json!(VERSION));
    match ran {
        Ran::Code(r) => describe(&mut response, &r),
        Ran::Exec(Ok(text)) => {
            response.insert("status".into(), json!(0));
            response.insert("killed_by".into(), Value::Null);
            response.insert("globals_json".into(), json!(text));
        }
        Ran::Exec(Err(e)) => {
            match e.result() {
                Some(r) => describe(&mut response, r),
                None => {
                    response.insert("status".into(), Value::Null);
                    response.insert("killed_by".into(), Value::Null);
                }
            }
            response.insert("codejail_message".into(), json!(e.codejail_message()));
            response.insert("message".into(), json!(e.to_string()));
        }
    }
    response.insert("pid".into(), json!(captured.pid));
    response.insert(
        "jail_dir".into(),
        json!(captured.jail_dir.map(|p| p.display().to_string())),
    );
    response.insert("logs".into(), Value::Array(captured.logs));
    Ok(Value::Object(response))
}

enum Ran {
    Code(JailResult),
    Exec(Result<String, SafeExecError>),
}

fn describe(response: &mut Map<String, Value>, r: &JailResult) {
    let fields = json!({
        "status": r.status,
        "stdout_b64": b64(&r.stdout),
        "stderr_b64": b64(&r.stderr),
        "killed_by": r.killed_by.map(|k| k.as_str()),
        "truncated": {"stdout": r.truncated.stdout, "stderr": r.truncated.stderr},
        "wall_ms": r.wall.as_millis() as u64,
        "cpu_ms": r.cpu.as_millis() as u64,
        "max_rss_kib": r.max_rss_kib,
        "layers": r.layers.names(),
        "landlock": r.landlock.map(|e| e.as_str()),
    });
    if let Value::Object(map) = fields {
        response.extend(map);
    }
}
