//! Python's `json.loads`, for its verdict and the top level's raw text.

use super::pystr::{PyStr, decode_string};
use super::scanner::{PyScanner, Slot};

/// Why Python's `json.loads` refuses a text, with the message Python 3.11
/// gives (`str()` of the exception).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadsError {
    /// `json.JSONDecodeError`: `<msg>: line L column C (char P)`, the
    /// position counted in characters, as Python counts it.
    #[error("{msg}: line {line} column {column} (char {pos})")]
    Decode {
        /// Python's message (`Expecting value`, `Extra data`, ...).
        msg: &'static str,
        /// Characters before the error.
        pos: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// An integer past Python's limit for converting digits (4300 digits:
    /// `ValueError`).
    #[error(
        "Exceeds the limit ({MAX_INT_DIGITS} digits) for integer string conversion: value has {digits} digits; use sys.set_int_max_str_digits() to increase the limit"
    )]
    IntTooLong {
        /// The integer's digits.
        digits: usize,
    },
    /// Nesting deeper than [`MAX_DEPTH`](super::MAX_DEPTH) (Python: `RecursionError`).
    #[error("maximum recursion depth exceeded while decoding a JSON {what} from a unicode string")]
    TooDeep {
        /// `object` or `array`.
        what: &'static str,
    },
}

/// Python's default limit on the digits of an integer read from text
/// (`sys.get_int_max_str_digits()`).
pub const MAX_INT_DIGITS: usize = 4300;

/// What a value is, as `json.loads` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `{...}`: a dict.
    Object,
    /// `[...]`: a list.
    Array,
    /// `"..."`: a str.
    String,
    /// An int.
    Int,
    /// A float, `NaN`, `Infinity` and `-Infinity` included.
    Float,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

/// One value's text, exactly as written, and what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw<'a> {
    /// The value's text (no surrounding white space).
    pub text: &'a str,
    /// What it is.
    pub kind: Kind,
}

/// One member of a top-level object: its key, decoded, and its value's
/// text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    /// The key as Python holds it.
    pub key: PyStr,
    /// The value's text.
    pub value: Raw<'a>,
}

/// Python's `json.loads` over `text`, for its verdict only: the same
/// scanner (the C one of CPython 3.11: numbers read as far as they go,
/// errors raised by the container that meets the next token) and the same
/// messages and positions. Iterative, nesting bounded by
/// [`MAX_DEPTH`](super::MAX_DEPTH).
///
/// # Errors
/// [`LoadsError`]: what Python would raise.
pub fn loads_check(text: &str) -> Result<(), LoadsError> {
    PyScanner::new(text).run(|_, _, _| ()).map(|_| ())
}

/// The top-level value of `text` (checked as [`loads_check`] does): an
/// object's members in the order written, with their keys decoded and
/// their values' text (a repeated key appears each time: Python keeps the
/// last value at the first one's place), or the one value of another kind.
///
/// # Errors
/// [`LoadsError`] as [`loads_check`].
pub fn top_level(text: &str) -> Result<(Raw<'_>, Vec<Member<'_>>), LoadsError> {
    let mut members = Vec::new();
    let mut key: Option<PyStr> = None;
    let top = PyScanner::new(text).run(|depth, slot, raw| {
        if depth != 1 {
            return;
        }
        match slot {
            Slot::Key => key = Some(decode_string(raw.text)),
            Slot::Value => {
                if let Some(k) = key.take() {
                    members.push(Member { key: k, value: raw });
                }
            }
        }
    })?;
    if top.kind != Kind::Object {
        members.clear();
    }
    Ok((top, members))
}

/// The items of a top-level array, as their text (checked as
/// [`loads_check`] does); empty for any other value.
///
/// # Errors
/// [`LoadsError`] as [`loads_check`].
pub fn array_items(text: &str) -> Result<Vec<Raw<'_>>, LoadsError> {
    let mut items = Vec::new();
    let top = PyScanner::new(text).run(|depth, slot, raw| {
        if depth == 1 && slot == Slot::Value {
            items.push(raw);
        }
    })?;
    if top.kind != Kind::Array {
        items.clear();
    }
    Ok(items)
}
