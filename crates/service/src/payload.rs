//! The `payload` field: Python's `json.loads`, then codejail-service's
//! schema (Draft 2020-12) with jsonschema's `best_match` message and path.

use codejail_pyexec::json::{self, Kind, LoadsError, Member, PyStr, Raw};

/// What a valid payload asks for.
#[derive(Debug)]
pub struct Params {
    /// The code, as decoded (may hold lone surrogates).
    pub code: PyStr,
    /// `globals_dict`'s text, exactly as sent.
    pub globals_json: String,
    /// `python_path` (`null` and absent: empty).
    pub python_path: Vec<PyStr>,
    /// `limit_overrides_context`, when a non-empty string.
    pub limit_overrides_context: Option<String>,
    /// `slug`, when a string.
    pub slug: Option<String>,
    /// `unsafely` is `true`.
    pub unsafely: bool,
}

/// Why a payload is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Not JSON as Python reads it.
    #[error("Unable to parse payload JSON: {0}")]
    Parse(LoadsError),
    /// Not of the schema.
    #[error("Payload JSON did not match schema at path {path}: {message}")]
    Schema {
        /// jsonschema's `json_path` of the best match.
        path: String,
        /// Its message.
        message: String,
    },
}

/// Reads and checks a payload.
///
/// # Errors
/// [`PayloadError`], with codejail-service's message.
pub fn parse(payload: &str) -> Result<Params, PayloadError> {
    let (top, members) = json::top_level(payload).map_err(PayloadError::Parse)?;
    if let Some(e) = best_match(top, &members) {
        return Err(PayloadError::Schema {
            path: e.json_path(&[]),
            message: e.message,
        });
    }
    // The schema holds: read what Python's dict would hold (the last of a
    // repeated key).
    let get = |name: &str| {
        members
            .iter()
            .rev()
            .find(|m| m.key.as_str() == Some(name))
            .map(|m| m.value)
    };
    let string = |raw: Option<Raw<'_>>| {
        raw.filter(|r| r.kind == Kind::String)
            .map(|r| json::decode_string(r.text))
    };
    let code = string(get("code")).unwrap_or_default();
    let globals_json = get("globals_dict").map_or("{}", |r| r.text).to_owned();
    let python_path = match get("python_path") {
        Some(r) if r.kind == Kind::Array => json::array_items(r.text)
            .unwrap_or_default()
            .into_iter()
            .map(|item| json::decode_string(item.text))
            .collect(),
        _ => Vec::new(),
    };
    Ok(Params {
        code,
        globals_json,
        python_path,
        limit_overrides_context: string(get("limit_overrides_context"))
            .map(|s| s.to_string_lossy())
            .filter(|s| !s.is_empty()),
        slug: string(get("slug")).map(|s| s.to_string_lossy()),
        unsafely: get("unsafely").is_some_and(|r| r.text == "true"),
    })
}

/// An element of an error's path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(usize),
}

/// One validation error, as jsonschema makes it.
#[derive(Debug)]
struct SchemaError {
    /// Path relative to the parent error (the instance's root for a
    /// top-level one).
    path: Vec<Step>,
    /// The keyword (`type`, `required`, `anyOf`).
    validator: &'static str,
    /// Whether the instance is of the `type` of the schema the error is
    /// about (`ValidationError._matches_type`).
    matches_type: bool,
    message: String,
    context: Vec<SchemaError>,
}

/// jsonschema's `relevance`: (-len(path), path, not weak, strong, not
/// matches_type).
type Relevance<'a> = (isize, &'a [Step], bool, bool, bool);

impl SchemaError {
    fn relevance(&self) -> Relevance<'_> {
        (
            -(self.path.len() as isize),
            &self.path,
            !matches!(self.validator, "anyOf" | "oneOf"),
            false,
            !self.matches_type,
        )
    }

    fn json_path(&self, parent: &[Step]) -> String {
        let mut out = String::from("$");
        for step in parent.iter().chain(&self.path) {
            match step {
                Step::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

fn type_error(raw: Raw<'_>, path: Vec<Step>, expected: &str) -> SchemaError {
    SchemaError {
        path,
        validator: "type",
        matches_type: false,
        message: format!("{} is not of type '{expected}'", json::py_repr(raw.text)),
        context: Vec::new(),
    }
}

/// The errors of one property's value, if any (`properties` descends with
/// the key as the path).
fn property_errors(name: &str, raw: Raw<'_>) -> Option<SchemaError> {
    let key = vec![Step::Key(name.to_owned())];
    let any_of = |context: Vec<SchemaError>| SchemaError {
        path: key.clone(),
        validator: "anyOf",
        matches_type: false,
        message: format!(
            "{} is not valid under any of the given schemas",
            json::py_repr(raw.text)
        ),
        context,
    };
    match name {
        "code" => (raw.kind != Kind::String).then(|| type_error(raw, key.clone(), "string")),
        "globals_dict" => {
            (raw.kind != Kind::Object).then(|| type_error(raw, key.clone(), "object"))
        }
        "unsafely" => (raw.kind != Kind::Bool).then(|| type_error(raw, key.clone(), "boolean")),
        "python_path" => {
            if raw.kind == Kind::Null {
                return None;
            }
            let mut context = Vec::new();
            if raw.kind == Kind::Array {
                for (i, item) in json::array_items(raw.text).ok()?.into_iter().enumerate() {
                    if item.kind != Kind::String {
                        context.push(type_error(item, vec![Step::Index(i)], "string"));
                    }
                }
                if context.is_empty() {
                    return None;
                }
            } else {
                context.push(type_error(raw, Vec::new(), "array"));
            }
            context.push(type_error(raw, Vec::new(), "null"));
            Some(any_of(context))
        }
        "limit_overrides_context" | "slug" => {
            if matches!(raw.kind, Kind::String | Kind::Null) {
                return None;
            }
            Some(any_of(vec![
                type_error(raw, Vec::new(), "string"),
                type_error(raw, Vec::new(), "null"),
            ]))
        }
        _ => None,
    }
}

/// The schema's properties, in its order.
const PROPERTIES: [&str; 6] = [
    "code",
    "globals_dict",
    "python_path",
    "limit_overrides_context",
    "slug",
    "unsafely",
];
const REQUIRED: [&str; 2] = ["code", "globals_dict"];

/// `best_match(validator.iter_errors(instance))`, with the path of the
/// chosen error's parent: `None` when the payload is valid.
fn best_match(top: Raw<'_>, members: &[Member<'_>]) -> Option<SchemaError> {
    let mut errors = Vec::new();
    if top.kind != Kind::Object {
        errors.push(type_error(top, Vec::new(), "object"));
    } else {
        let value = |name: &str| {
            members
                .iter()
                .rev()
                .find(|m| m.key.as_str() == Some(name))
                .map(|m| m.value)
        };
        for name in PROPERTIES {
            if let Some(raw) = value(name) {
                errors.extend(property_errors(name, raw));
            }
        }
        for name in REQUIRED {
            if value(name).is_none() {
                errors.push(SchemaError {
                    path: Vec::new(),
                    validator: "required",
                    // The error's schema is the root one: type object, and
                    // the instance is an object.
                    matches_type: true,
                    message: format!("'{name}' is a required property"),
                    context: Vec::new(),
                });
            }
        }
    }
    // max(): the first of the most relevant.
    let mut best = errors.into_iter().reduce(|best, e| {
        if e.relevance() > best.relevance() {
            e
        } else {
            best
        }
    })?;
    // Descend into the context while its least relevant error stands out.
    let mut prefix: Vec<Step> = Vec::new();
    while !best.context.is_empty() {
        let mut context = std::mem::take(&mut best.context);
        // Stable, like heapq.nsmallest.
        context.sort_by(|a, b| a.relevance().cmp(&b.relevance()));
        if context.len() >= 2 && context[0].relevance() == context[1].relevance() {
            best.context = context;
            break;
        }
        prefix.extend(best.path.iter().cloned());
        best = context.swap_remove(0);
    }
    best.path = prefix.into_iter().chain(best.path).collect();
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(payload: &str) -> String {
        parse(payload).unwrap_err().to_string()
    }

    #[test]
    fn codejail_service_test_messages() {
        assert_eq!(
            refusal("Not JSON"),
            "Unable to parse payload JSON: Expecting value: line 1 column 1 (char 0)"
        );
        for (payload, missing) in [
            (r#"{"globals_dict": {}}"#, "code"),
            (r#"{"code": "retval = 3 + 4"}"#, "globals_dict"),
            ("{}", "code"),
        ] {
            assert_eq!(
                refusal(payload),
                format!(
                    "Payload JSON did not match schema at path $: '{missing}' is a required property"
                )
            );
        }
        assert_eq!(
            refusal(r#"{"code": 3, "globals_dict": {}}"#),
            "Payload JSON did not match schema at path $.code: 3 is not of type 'string'"
        );
        assert_eq!(
            refusal(r#"{"code": "x", "globals_dict": {}, "python_path": ["a", 1]}"#),
            "Payload JSON did not match schema at path $.python_path[1]: 1 is not of type 'string'"
        );
        assert_eq!(
            refusal(r#"{"code": "x", "globals_dict": {}, "slug": 3}"#),
            "Payload JSON did not match schema at path $.slug: 3 is not valid under any of the given schemas"
        );
    }

    #[test]
    fn valid_payloads_keep_the_globals_text() {
        let p = parse(
            r#"{"code": "x = 1", "globals_dict": {"n": NaN, "big": 123456789012345678901234567890},
               "python_path": ["python_lib.zip"], "limit_overrides_context": "", "slug": "hw5", "unsafely": false}"#,
        )
        .unwrap();
        assert_eq!(p.code.as_str(), Some("x = 1"));
        assert_eq!(
            p.globals_json,
            r#"{"n": NaN, "big": 123456789012345678901234567890}"#
        );
        assert_eq!(p.python_path, [PyStr::from("python_lib.zip")]);
        assert_eq!(p.limit_overrides_context, None);
        assert_eq!(p.slug.as_deref(), Some("hw5"));
        assert!(!p.unsafely);
        let p = parse(r#"{"code": "a", "globals_dict": {"a": 1}, "code": "b", "python_path": null, "unsafely": true}"#)
            .unwrap();
        assert_eq!(p.code.as_str(), Some("b"));
        assert!(p.python_path.is_empty());
        assert!(p.unsafely);
    }

    #[test]
    fn no_input_panics() {
        // Random texts from JSON's alphabet, and byte soup as text.
        let alphabet: Vec<char> = "{}[]\":,.-+eE019 \n\\uNaIfty'\u{1}é\u{2028}"
            .chars()
            .collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..20_000 {
            let len = next(40);
            let text: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            let _ = parse(&text);
            let wrapped =
                format!("{{\"code\": \"x\", \"globals_dict\": {{}}, \"python_path\": {text}}}");
            let _ = parse(&wrapped);
        }
        // As deep as the facade takes (the payload's object is one level),
        // and one deeper.
        let deep = |n: usize| {
            format!(
                "{{\"globals_dict\": {{}}, \"code\": {}{}}}",
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        let e = parse(&deep(1999)).unwrap_err().to_string();
        assert!(
            e.starts_with("Payload JSON did not match schema at path $.code: [[[["),
            "{}",
            &e[..80]
        );
        assert_eq!(
            parse(&deep(2000)).unwrap_err().to_string(),
            "Unable to parse payload JSON: maximum recursion depth exceeded while decoding a JSON array from a unicode string"
        );
    }
}
