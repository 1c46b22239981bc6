//! The request: read from stdin, checked, and its language and limits.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use codejail::{Lang, LimitName};
use serde::Deserialize;
use serde_json::Value;

use super::{MAX_REQUEST, Refusal, VERSION, usage};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Request {
    #[allow(dead_code)]
    pub(super) v: u64,
    pub(super) op: Op,
    pub(super) jail: JailSpec,
    #[serde(default)]
    pub(super) code: Option<String>,
    #[serde(default)]
    pub(super) argv: Vec<String>,
    #[serde(default)]
    pub(super) stdin_b64: Option<String>,
    #[serde(default)]
    pub(super) files: Vec<PathBuf>,
    #[serde(default)]
    pub(super) extra_files: Vec<(String, String)>,
    #[serde(default)]
    pub(super) python_path: Vec<PathBuf>,
    #[serde(default)]
    pub(super) globals_json: Option<String>,
    #[serde(default)]
    pub(super) limits: BTreeMap<String, u64>,
    #[serde(default)]
    pub(super) slug: Option<String>,
    #[serde(default, rename = "unsafe")]
    pub(super) unconfined: bool,
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(super) enum Op {
    JailCode,
    SafeExec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JailSpec {
    #[serde(default)]
    pub(super) name: Option<String>,
    pub(super) bin: PathBuf,
    #[serde(default)]
    pub(super) user: Option<String>,
    #[serde(default)]
    pub(super) lang: Option<LangSpec>,
    #[serde(default)]
    pub(super) policy: Option<String>,
    #[serde(default)]
    pub(super) apparmor_profile: Option<String>,
    #[serde(default)]
    pub(super) jail_parent: Option<PathBuf>,
    #[serde(default)]
    pub(super) allow_root_user: bool,
    #[serde(default)]
    pub(super) allow_exec: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LangSpec {
    pub(super) name: String,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default)]
    pub(super) safe_exec: bool,
}

pub(super) fn read_request() -> Result<Request, Refusal> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_REQUEST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("cannot read the request on stdin: {e}")))?;
    if bytes.is_empty() {
        return Err(Refusal {
            code: 0,
            message: String::new(),
        });
    }
    if bytes.len() as u64 > MAX_REQUEST {
        return Err(usage(format!(
            "the request is larger than {} MiB; stage big inputs as files",
            MAX_REQUEST >> 20
        )));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| usage(format!("the request is not JSON: {e}")))?;
    match value.get("v").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(v) => {
            return Err(usage(format!(
                "protocol version {v} is not spoken here; this codejail speaks version {VERSION}"
            )));
        }
        None => return Err(usage("the request has no protocol version; add \"v\": 1")),
    }
    Request::deserialize(value).map_err(|e| usage(format!("malformed request: {e}")))
}

pub(super) fn lang(spec: Option<&LangSpec>) -> Result<Lang, Refusal> {
    let Some(spec) = spec else {
        return Ok(Lang::python3());
    };
    if spec.safe_exec {
        let python = Lang::python3();
        if spec.args != python.args() {
            return Err(usage(format!(
                "language `{}` has safe_exec, which runs Python with {:?}; it cannot take {:?}",
                spec.name,
                python.args(),
                spec.args
            )));
        }
        return Ok(python);
    }
    if spec.name == "other" && spec.args.is_empty() {
        return Ok(Lang::other());
    }
    Ok(Lang::custom(spec.name.clone(), spec.args.clone()))
}

pub(super) fn limits(asked: &BTreeMap<String, u64>) -> Result<Vec<(LimitName, u64)>, Refusal> {
    asked
        .iter()
        .map(|(name, &value)| {
            let name: LimitName = name.parse().map_err(usage)?;
            Ok((name, name.check(value).map_err(usage)?))
        })
        .collect()
}
