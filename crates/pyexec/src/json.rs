//! Python's JSON dialect, as `json.dumps` writes it and `json.loads` reads
//! it: standard JSON plus `NaN`, `Infinity`, `-Infinity`, integers of any
//! size, and `\ud800`-style escapes of lone surrogates.
//!
//! [`check_object`] validates text of that dialect (one object, nothing
//! else) without building anything, iteratively, so that no input can
//! exhaust the stack. [`to_map`] turns it into a `serde_json` map, saying
//! what it had to change: `serde_json` holds integers of any size
//! (`arbitrary_precision`), but neither `NaN`/`±Infinity` (they become
//! `null`) nor lone surrogates (they become U+FFFD).

use serde_json::{Map, Value};

/// Deepest nesting accepted. Python's own `json` stops at its recursion
/// limit (1000 by default), so nothing CodeJail could carry is refused.
pub const MAX_DEPTH: usize = 2000;

/// Why text is not one JSON object of Python's dialect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct JsonError {
    /// What is wrong.
    pub what: &'static str,
    /// Where.
    pub at: usize,
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn err<T>(&self, what: &'static str) -> Result<T, JsonError> {
        Err(JsonError { what, at: self.i })
    }

    fn space(&mut self) {
        while self
            .b
            .get(self.i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.i += 1;
        }
    }

    fn eat(&mut self, word: &[u8]) -> bool {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`, or `-Infinity`.
    fn number(&mut self) -> Result<(), JsonError> {
        self.eat(b"-");
        if self.eat(b"Infinity") {
            return Ok(());
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("expected a value"),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err("expected a digit after the decimal point");
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("expected a digit in the exponent");
            }
        }
        Ok(())
    }

    /// A string, from its opening quote; strict (no raw control
    /// characters), as `json.loads` is.
    fn string(&mut self) -> Result<(), JsonError> {
        self.i += 1;
        loop {
            match self.b.get(self.i) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.b.get(self.i) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.err("bad \\u escape");
                            }
                            self.i += 5;
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                Some(c) if *c < 0x20 => return self.err("control character in a string"),
                Some(_) => self.i += 1,
            }
        }
    }

    /// One scalar value, or the opening of a container (returned).
    fn value(&mut self) -> Result<Option<u8>, JsonError> {
        match self.b.get(self.i) {
            Some(b'{') => Ok(Some(b'}')),
            Some(b'[') => Ok(Some(b']')),
            Some(b'"') => self.string().map(|()| None),
            _ => {
                for word in [&b"true"[..], b"false", b"null", b"NaN", b"Infinity"] {
                    if self.eat(word) {
                        return Ok(None);
                    }
                }
                self.number().map(|()| None)
            }
        }
    }
}

/// Checks that `text` is exactly one JSON object of Python's dialect,
/// nested at most [`MAX_DEPTH`] deep.
///
/// # Errors
/// [`JsonError`] with what is wrong and where.
pub fn check_object(text: &str) -> Result<(), JsonError> {
    let mut s = Scanner {
        b: text.as_bytes(),
        i: 0,
    };
    s.space();
    if s.b.get(s.i) != Some(&b'{') {
        return s.err("expected an object");
    }
    // The closing bracket of each open container, innermost last.
    let mut open: Vec<u8> = Vec::new();
    // Whether the next token may close the innermost container (it is
    // empty so far, or a value was just completed).
    let mut value = s.value()?;
    loop {
        if let Some(close) = value.take() {
            if open.len() == MAX_DEPTH {
                return s.err("nested too deep");
            }
            open.push(close);
            s.i += 1;
            s.space();
            if s.eat(&[close]) {
                open.pop();
            } else {
                value = s.element(close)?;
                continue;
            }
        }
        // A value is complete: a comma and the next element, or the end
        // of the innermost container.
        s.space();
        let Some(&close) = open.last() else {
            break;
        };
        if s.eat(b",") {
            s.space();
            value = s.element(close)?;
        } else if s.eat(&[close]) {
            open.pop();
        } else {
            return s.err("expected `,` or the end of the container");
        }
    }
    s.space();
    if s.i != s.b.len() {
        return s.err("extra data after the object");
    }
    Ok(())
}

impl Scanner<'_> {
    /// One element of a container closed by `close`: `"key": value` in an
    /// object, a value in an array.
    fn element(&mut self, close: u8) -> Result<Option<u8>, JsonError> {
        if close == b'}' {
            if self.b.get(self.i) != Some(&b'"') {
                return self.err("expected a string key");
            }
            self.string()?;
            self.space();
            if !self.eat(b":") {
                return self.err("expected `:`");
            }
            self.space();
        }
        self.value()
    }
}

/// Converts text that [`check_object`] accepted into a map: `NaN` and
/// `±Infinity` become `null`, lone surrogates U+FFFD; everything else,
/// integers of any size included, is kept exactly.
///
/// # Errors
/// [`JsonError`] when the text is not one object.
pub fn to_map(text: &str) -> Result<Map<String, Value>, JsonError> {
    check_object(text)?;
    let clean = representable(text);
    let mut de = serde_json::Deserializer::from_str(&clean);
    // check_object bounded the depth.
    de.disable_recursion_limit();
    match serde::Deserialize::deserialize(&mut de) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JsonError {
            what: "not representable",
            at: 0,
        }),
    }
}

/// `text` with what `serde_json` cannot hold replaced: the bare words
/// `NaN`, `Infinity`, `-Infinity` by `null`, escapes of lone surrogates by
/// `\ufffd`. The text is known to be valid.
fn representable(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut in_string = false;
    while i < b.len() {
        let c = b[i];
        if in_string {
            if c == b'\\' && b[i + 1] == b'u' {
                let unit = hex4(&b[i + 2..i + 6]);
                let next_low = b.get(i + 6..i + 8) == Some(b"\\u")
                    && b.get(i + 8..i + 12).is_some_and(|h| {
                        h.iter().all(u8::is_ascii_hexdigit) && (0xDC00..0xE000).contains(&hex4(h))
                    });
                if (0xD800..0xDC00).contains(&unit) && next_low {
                    out.push_str(&text[i..i + 12]);
                    i += 12;
                } else if (0xD800..0xE000).contains(&unit) {
                    out.push_str("\\ufffd");
                    i += 6;
                } else {
                    out.push_str(&text[i..i + 6]);
                    i += 6;
                }
                continue;
            }
            if c == b'\\' {
                out.push_str(&text[i..i + 2]);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else {
            let word = [&b"-Infinity"[..], b"Infinity", b"NaN"]
                .into_iter()
                .find(|w| b[i..].starts_with(w));
            if let Some(w) = word {
                out.push_str("null");
                i += w.len();
                continue;
            }
        }
        // Copy one whole character.
        let len = text[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&text[i..i + len]);
        i += len;
    }
    out
}

fn hex4(h: &[u8]) -> u32 {
    h.iter().fold(0, |acc, &d| {
        acc * 16 + char::from(d).to_digit(16).unwrap_or(0)
    })
}

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
    /// Nesting deeper than [`MAX_DEPTH`] (Python: `RecursionError`).
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

/// A string as `json.loads` decodes it: code points, which may include
/// lone surrogates (`"\ud800"`) that a Rust `String` cannot hold; kept as
/// generalized UTF-8 (WTF-8).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PyStr(Vec<u8>);

impl PyStr {
    /// The text, when it holds no lone surrogate.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The text with each lone surrogate replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        self.code_points()
            .map(|c| char::from_u32(c).unwrap_or('\u{fffd}'))
            .collect()
    }

    /// The code points, lone surrogates included.
    pub fn code_points(&self) -> impl Iterator<Item = u32> + '_ {
        let b = &self.0;
        let mut i = 0;
        std::iter::from_fn(move || {
            let c = *b.get(i)?;
            let (len, init) = match c {
                0..0x80 => (1, u32::from(c)),
                0xC0..0xE0 => (2, u32::from(c & 0x1F)),
                0xE0..0xF0 => (3, u32::from(c & 0x0F)),
                _ => (4, u32::from(c & 0x07)),
            };
            let cp = b[i + 1..i + len]
                .iter()
                .fold(init, |acc, &x| (acc << 6) | u32::from(x & 0x3F));
            i += len;
            Some(cp)
        })
    }

    fn push(&mut self, cp: u32) {
        // Generalized UTF-8: surrogates are encoded like any other BMP
        // code point.
        let mut buf = [0u8; 4];
        let bytes: &[u8] = match cp {
            0..0x80 => {
                buf[0] = cp as u8;
                &buf[..1]
            }
            0x80..0x800 => {
                buf[0] = 0xC0 | (cp >> 6) as u8;
                buf[1] = 0x80 | (cp & 0x3F) as u8;
                &buf[..2]
            }
            0x800..0x10000 => {
                buf[0] = 0xE0 | (cp >> 12) as u8;
                buf[1] = 0x80 | ((cp >> 6) & 0x3F) as u8;
                buf[2] = 0x80 | (cp & 0x3F) as u8;
                &buf[..3]
            }
            _ => {
                buf[0] = 0xF0 | (cp >> 18) as u8;
                buf[1] = 0x80 | ((cp >> 12) & 0x3F) as u8;
                buf[2] = 0x80 | ((cp >> 6) & 0x3F) as u8;
                buf[3] = 0x80 | (cp & 0x3F) as u8;
                &buf[..4]
            }
        };
        self.0.extend_from_slice(bytes);
    }
}

impl From<&str> for PyStr {
    fn from(s: &str) -> PyStr {
        PyStr(s.as_bytes().to_vec())
    }
}

/// Python's `json.loads` over `text`, for its verdict only: the same
/// scanner (the C one of CPython 3.11: numbers read as far as they go,
/// errors raised by the container that meets the next token) and the same
/// messages and positions. Iterative, nesting bounded by [`MAX_DEPTH`].
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

/// The characters of a string value's text (quotes included), decoded as
/// `json.loads` decodes them. The text must be a valid string.
pub fn decode_string(text: &str) -> PyStr {
    let b = text.as_bytes();
    let mut out = PyStr(Vec::with_capacity(b.len()));
    let mut i = 1;
    let end = b.len().saturating_sub(1);
    while i < end {
        if b[i] != b'\\' {
            let start = i;
            while i < end && b[i] != b'\\' {
                i += 1;
            }
            out.0.extend_from_slice(&b[start..i]);
            continue;
        }
        let c = b[i + 1];
        i += 2;
        let cp = match c {
            b'b' => 8,
            b'f' => 12,
            b'n' => 10,
            b'r' => 13,
            b't' => 9,
            b'u' => {
                let hi = hex4(&b[i..i + 4]);
                i += 4;
                let pair = (0xD800..0xDC00).contains(&hi)
                    && b.get(i..i + 2) == Some(b"\\u")
                    && b.get(i + 2..i + 6).is_some_and(|h| {
                        h.iter().all(u8::is_ascii_hexdigit) && (0xDC00..0xE000).contains(&hex4(h))
                    });
                if pair {
                    let lo = hex4(&b[i + 2..i + 6]);
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else {
                    hi
                }
            }
            other => u32::from(other),
        };
        out.push(cp);
    }
    out
}

/// Where a scanned value sits in its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Key,
    Value,
}

struct PyScanner<'a> {
    text: &'a str,
    b: &'a [u8],
}

impl<'a> PyScanner<'a> {
    fn new(text: &'a str) -> PyScanner<'a> {
        PyScanner {
            text,
            b: text.as_bytes(),
        }
    }

    fn err<T>(&self, msg: &'static str, at: usize) -> Result<T, LoadsError> {
        let before = &self.text[..at];
        let pos = before.chars().count();
        let line = before.matches('\n').count() + 1;
        let column = match before.rfind('\n') {
            Some(nl) => before[nl + 1..].chars().count() + 1,
            None => pos + 1,
        };
        Err(LoadsError::Decode {
            msg,
            pos,
            line,
            column,
        })
    }

    fn space(&self, mut i: usize) -> usize {
        while self
            .b
            .get(i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            i += 1;
        }
        i
    }

    /// A string from its opening quote at `begin`: the index after it.
    fn string(&self, begin: usize) -> Result<usize, LoadsError> {
        let b = self.b;
        let n = b.len();
        let mut i = begin + 1;
        loop {
            while i < n && b[i] != b'"' && b[i] != b'\\' {
                if b[i] <= 0x1f {
                    return self.err("Invalid control character at", i);
                }
                i += 1;
            }
            if i >= n {
                return self.err("Unterminated string starting at", begin);
            }
            if b[i] == b'"' {
                return Ok(i + 1);
            }
            i += 1;
            if i == n {
                return self.err("Unterminated string starting at", begin);
            }
            if b[i] != b'u' {
                if !matches!(b[i], b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') {
                    return self.err("Invalid \\escape", i - 1);
                }
                i += 1;
                continue;
            }
            // \uXXXX: four hex digits, and a character after them.
            let first = i + 1;
            if first + 4 >= n {
                return self.err("Invalid \\uXXXX escape", i);
            }
            if !b[first..first + 4].iter().all(u8::is_ascii_hexdigit) {
                return self.err("Invalid \\uXXXX escape", i);
            }
            let unit = hex4(&b[first..first + 4]);
            i = first + 4;
            // A high surrogate takes a following \uXXXX with it when there
            // is room for it and a character after it.
            if (0xD800..0xDC00).contains(&unit) && i + 6 < n && b[i] == b'\\' && b[i + 1] == b'u' {
                if !b[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) {
                    return self.err("Invalid \\uXXXX escape", i + 1);
                }
                if (0xDC00..0xE000).contains(&hex4(&b[i + 2..i + 6])) {
                    i += 6;
                }
            }
        }
    }

    /// A number from `start`, as far as it goes: (end, is it an int).
    fn number(&self, start: usize) -> Result<(usize, bool), LoadsError> {
        let b = self.b;
        let last = b.len() - 1; // start < len
        let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
        let mut i = start;
        if b[i] == b'-' {
            i += 1;
            if i > last {
                return self.err("Expecting value", start);
            }
        }
        match b[i] {
            b'1'..=b'9' => {
                i += 1;
                while digit(i) {
                    i += 1;
                }
            }
            b'0' => i += 1,
            _ => return self.err("Expecting value", start),
        }
        let mut int = true;
        if i < last && b[i] == b'.' && digit(i + 1) {
            int = false;
            i += 2;
            while digit(i) {
                i += 1;
            }
        }
        if i < last && matches!(b[i], b'e' | b'E') {
            let e = i;
            i += 1;
            if i < last && matches!(b[i], b'-' | b'+') {
                i += 1;
            }
            while digit(i) {
                i += 1;
            }
            if digit(i - 1) {
                int = false;
            } else {
                i = e;
            }
        }
        if int {
            let digits = i - start - usize::from(b[start] == b'-');
            if digits > MAX_INT_DIGITS {
                return Err(LoadsError::IntTooLong { digits });
            }
        }
        Ok((i, int))
    }

    /// Scans the whole text; `seen(depth, slot, raw)` hears of every key
    /// and every complete value (depth 0: the top-level value). Returns the
    /// top-level value.
    fn run(&self, mut seen: impl FnMut(usize, Slot, Raw<'a>)) -> Result<Raw<'a>, LoadsError> {
        let b = self.b;
        let n = b.len();
        if self.text.starts_with('\u{feff}') {
            return self.err("Unexpected UTF-8 BOM (decode using utf-8-sig)", 0);
        }
        // Open containers: (is it an object, where it starts).
        let mut open: Vec<(bool, usize)> = Vec::new();
        let mut i = self.space(0);
        // Expecting a value at i.
        'value: loop {
            if i >= n {
                return self.err("Expecting value", i);
            }
            let start = i;
            let kind = match b[i] {
                b'"' => {
                    i = self.string(i)?;
                    Kind::String
                }
                c @ (b'{' | b'[') => {
                    let object = c == b'{';
                    if open.len() == MAX_DEPTH {
                        return Err(LoadsError::TooDeep {
                            what: if object { "object" } else { "array" },
                        });
                    }
                    open.push((object, i));
                    i = self.space(i + 1);
                    let close = if object { b'}' } else { b']' };
                    if b.get(i) == Some(&close) {
                        open.pop();
                        i += 1;
                        if object { Kind::Object } else { Kind::Array }
                    } else {
                        if object {
                            i = self.key(i, open.len(), &mut seen)?;
                        }
                        continue 'value;
                    }
                }
                _ => {
                    let rest = &b[i..];
                    let word = [
                        (&b"null"[..], Kind::Null),
                        (b"true", Kind::Bool),
                        (b"false", Kind::Bool),
                        (b"NaN", Kind::Float),
                        (b"Infinity", Kind::Float),
                        (b"-Infinity", Kind::Float),
                    ]
                    .into_iter()
                    .find(|(w, _)| rest.starts_with(w));
                    if let Some((w, kind)) = word {
                        i += w.len();
                        kind
                    } else {
                        let (end, int) = self.number(i)?;
                        i = end;
                        if int { Kind::Int } else { Kind::Float }
                    }
                }
            };
            seen(
                open.len(),
                Slot::Value,
                Raw {
                    text: &self.text[start..i],
                    kind,
                },
            );
            // A value is complete: close containers, or go on to the next
            // element.
            loop {
                let Some(&(object, opened)) = open.last() else {
                    let top = Raw {
                        text: &self.text[start..i],
                        kind,
                    };
                    let end = self.space(i);
                    if end != n {
                        return self.err("Extra data", end);
                    }
                    return Ok(top);
                };
                i = self.space(i);
                let close = if object { b'}' } else { b']' };
                if b.get(i) == Some(&close) {
                    open.pop();
                    i += 1;
                    seen(
                        open.len(),
                        Slot::Value,
                        Raw {
                            text: &self.text[opened..i],
                            kind: if object { Kind::Object } else { Kind::Array },
                        },
                    );
                    if open.is_empty() {
                        let end = self.space(i);
                        if end != n {
                            return self.err("Extra data", end);
                        }
                        return Ok(Raw {
                            text: &self.text[opened..i],
                            kind: if object { Kind::Object } else { Kind::Array },
                        });
                    }
                    continue;
                }
                if b.get(i) != Some(&b',') {
                    return self.err("Expecting ',' delimiter", i);
                }
                i = self.space(i + 1);
                if object {
                    i = self.key(i, open.len(), &mut seen)?;
                }
                continue 'value;
            }
        }
    }

    /// `"key" :` from `i`; the index of the value after it.
    fn key(
        &self,
        i: usize,
        depth: usize,
        seen: &mut impl FnMut(usize, Slot, Raw<'a>),
    ) -> Result<usize, LoadsError> {
        if self.b.get(i) != Some(&b'"') {
            return self.err("Expecting property name enclosed in double quotes", i);
        }
        let end = self.string(i)?;
        seen(
            depth,
            Slot::Key,
            Raw {
                text: &self.text[i..end],
                kind: Kind::String,
            },
        );
        let colon = self.space(end);
        if self.b.get(colon) != Some(&b':') {
            return self.err("Expecting ':' delimiter", colon);
        }
        Ok(self.space(colon + 1))
    }
}

/// Python's `repr()` of the value `json.loads` makes of `raw` (text that
/// [`loads_check`] accepted): `{'a': [1, 2.5, nan, None, True]}`, strings
/// quoted and escaped as Python does, a repeated key's last value at its
/// first place. Iterative.
pub fn py_repr(raw: &str) -> String {
    // The tree, built bottom-up in an arena: containers hold their
    // children's indices; scalars are written as they come.
    enum Node {
        Leaf(String),
        List(Vec<usize>),
        Dict(
            Vec<(String, usize)>,
            std::collections::HashMap<String, usize>,
        ),
    }
    let mut nodes: Vec<Node> = Vec::new();
    // Open containers: (node, pending key of a dict).
    let mut stack: Vec<(usize, Option<String>)> = Vec::new();
    let mut root = None;
    let attach = |nodes: &mut Vec<Node>, stack: &mut Vec<(usize, Option<String>)>, child: usize| {
        let Some((parent, key)) = stack.last_mut() else {
            return Some(child);
        };
        match &mut nodes[*parent] {
            Node::List(items) => items.push(child),
            Node::Dict(items, index) => {
                let k = key.take().unwrap_or_default();
                match index.get(&k) {
                    Some(&at) => items[at].1 = child,
                    None => {
                        index.insert(k.clone(), items.len());
                        items.push((k, child));
                    }
                }
            }
            Node::Leaf(_) => {}
        }
        None
    };
    // One walk over the text (valid by now), token by token.
    let b = raw.as_bytes();
    let mut i = 0;
    let scanner = PyScanner::new(raw);
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => i += 1,
            b'{' => {
                nodes.push(Node::Dict(Vec::new(), Default::default()));
                stack.push((nodes.len() - 1, None));
                i += 1;
            }
            b'[' => {
                nodes.push(Node::List(Vec::new()));
                stack.push((nodes.len() - 1, None));
                i += 1;
            }
            b'}' | b']' => {
                let (node, _) = stack.pop().expect("balanced");
                root = attach(&mut nodes, &mut stack, node).or(root);
                i += 1;
            }
            b'"' => {
                let end = scanner.string(i).expect("valid");
                let s = decode_string(&raw[i..end]);
                i = end;
                let after = scanner.space(i);
                let is_key = b.get(after) == Some(&b':')
                    && stack
                        .last()
                        .is_some_and(|(n, k)| matches!(nodes[*n], Node::Dict(..)) && k.is_none());
                if is_key {
                    stack.last_mut().expect("checked").1 = Some(repr_str(&s));
                } else {
                    nodes.push(Node::Leaf(repr_str(&s)));
                    let leaf = nodes.len() - 1;
                    root = attach(&mut nodes, &mut stack, leaf).or(root);
                }
            }
            _ => {
                let rest = &raw[i..];
                let (len, text) = if let Some(w) =
                    ["null", "true", "false", "NaN", "Infinity", "-Infinity"]
                        .into_iter()
                        .find(|w| rest.starts_with(w))
                {
                    let text = match w {
                        "null" => "None".to_owned(),
                        "true" => "True".to_owned(),
                        "false" => "False".to_owned(),
                        "NaN" => "nan".to_owned(),
                        "Infinity" => "inf".to_owned(),
                        _ => "-inf".to_owned(),
                    };
                    (w.len(), text)
                } else {
                    let (end, int) = scanner.number(i).expect("valid");
                    let t = &raw[i..end];
                    let text = if int {
                        if t == "-0" {
                            "0".to_owned()
                        } else {
                            t.to_owned()
                        }
                    } else {
                        py_float_repr(t.parse::<f64>().unwrap_or(f64::NAN))
                    };
                    (end - i, text)
                };
                i += len;
                nodes.push(Node::Leaf(text));
                let leaf = nodes.len() - 1;
                root = attach(&mut nodes, &mut stack, leaf).or(root);
            }
        }
    }
    // Write the tree out, depth first, with an explicit stack.
    let mut out = String::new();
    let Some(root) = root else { return out };
    let mut todo: Vec<(usize, usize)> = vec![(root, 0)];
    while let Some((node, next)) = todo.pop() {
        match &nodes[node] {
            Node::Leaf(text) => out.push_str(text),
            Node::List(items) => {
                if next == 0 {
                    out.push('[');
                } else {
                    out.push_str(", ");
                }
                if let Some(&child) = items.get(next) {
                    todo.push((node, next + 1));
                    todo.push((child, 0));
                } else {
                    if next > 0 {
                        out.truncate(out.len() - 2);
                    }
                    out.push(']');
                }
            }
            Node::Dict(items, _) => {
                if next == 0 {
                    out.push('{');
                } else {
                    out.push_str(", ");
                }
                if let Some((key, child)) = items.get(next) {
                    out.push_str(key);
                    out.push_str(": ");
                    todo.push((node, next + 1));
                    todo.push((*child, 0));
                } else {
                    if next > 0 {
                        out.truncate(out.len() - 2);
                    }
                    out.push('}');
                }
            }
        }
    }
    out
}

/// Python's `repr()` of a str.
pub fn repr_str(s: &PyStr) -> String {
    let has_single = s.0.contains(&b'\'');
    let quote = if has_single && !s.0.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.0.len() + 2);
    out.push(quote);
    for cp in s.code_points() {
        match cp {
            c if c == u32::from(quote) || c == u32::from(b'\\') => {
                out.push('\\');
                out.push(char::from_u32(c).unwrap_or('?'));
            }
            0x09 => out.push_str("\\t"),
            0x0A => out.push_str("\\n"),
            0x0D => out.push_str("\\r"),
            c if c < 0x20 || c == 0x7F => out.push_str(&format!("\\x{c:02x}")),
            c if c < 0x7F => out.push(char::from_u32(c).unwrap_or('?')),
            c => match char::from_u32(c).filter(|_| is_printable(c)) {
                Some(ch) => out.push(ch),
                None if c <= 0xFF => out.push_str(&format!("\\x{c:02x}")),
                None if c <= 0xFFFF => out.push_str(&format!("\\u{c:04x}")),
                None => out.push_str(&format!("\\U{c:08x}")),
            },
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one code point at or above U+0080.
fn is_printable(cp: u32) -> bool {
    let table = crate::printable::NOT_PRINTABLE;
    let at = table.partition_point(|&(_, hi)| hi < cp);
    table.get(at).is_none_or(|&(lo, _)| lo > cp)
}

/// Python's `repr()` of a float: the shortest digits that read back the
/// same, fixed notation for exponents from -4 to 15, else `1e+16`-style.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let decpt = exp + 1;
    let body = if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{first}{dot}e{esign}{:02}", exp.unsigned_abs())
    } else if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat(decpt.unsigned_abs() as usize))
    } else {
        let d = decpt as usize;
        if d >= digits.len() {
            format!("{digits}{}.0", "0".repeat(d - digits.len()))
        } else {
            format!("{}.{}", &digits[..d], &digits[d..])
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_dialect_objects_are_accepted() {
        for ok in [
            "{}",
            " {} ",
            r#"{"a": 1}"#,
            r#"{"a": [1, 2.5, -0.5e-3, 1E+9, true, false, null, NaN, Infinity, -Infinity]}"#,
            r#"{"big": 123456789012345678901234567890123456789}"#,
            r#"{"s": "caf\u00e9 \ud800 \"q\" \\ \/ \b\f\n\r\t"}"#,
            r#"{"nested": {"x": [[], {}, [{"y": []}]]}}"#,
            "{\"raw\": \"é🎉\"}",
        ] {
            assert_eq!(check_object(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "[]",
            "1",
            "{",
            "{}{}",
            "{} x",
            r#"{"a" 1}"#,
            r#"{"a": 1,}"#,
            r#"{"a": [1,]}"#,
            r#"{a: 1}"#,
            r#"{"a": 01}"#,
            r#"{"a": +1}"#,
            r#"{"a": .5}"#,
            r#"{"a": 1.}"#,
            r#"{"a": 1e}"#,
            r#"{"a": -NaN}"#,
            r#"{"a": nan}"#,
            r#"{"a": "\x"}"#,
            r#"{"a": "\u12"}"#,
            "{\"a\": \"tab\there\"}",
            r#"{"a": [}"#,
            r#"{"a": {]}"#,
            r#"{"a": tru}"#,
        ] {
            assert!(check_object(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn depth_is_bounded_without_recursion() {
        let deep = |n: usize| format!("{{\"a\": {}{}}}", "[".repeat(n), "]".repeat(n));
        assert_eq!(check_object(&deep(MAX_DEPTH - 1)), Ok(()));
        assert!(check_object(&deep(MAX_DEPTH)).is_err());
        // Far past any stack: refused, not a crash.
        assert!(check_object(&deep(10_000_000)).is_err());
        let map = to_map(&deep(MAX_DEPTH - 1)).unwrap();
        assert!(map["a"].is_array());
    }

    #[test]
    fn what_serde_json_cannot_hold_is_replaced_and_the_rest_kept() {
        let map = to_map(
            r#"{"n": NaN, "i": [Infinity, -Infinity], "k": "NaN", "big": 18446744073709551617, "s": "a\ud800b", "pair": "\ud83c\udf89", "e": "\u00e9"}"#,
        )
        .unwrap();
        assert_eq!(map["n"], Value::Null);
        assert_eq!(map["i"], serde_json::json!([null, null]));
        assert_eq!(map["k"], "NaN");
        assert_eq!(map["big"].to_string(), "18446744073709551617");
        assert_eq!(map["s"], "a\u{fffd}b");
        assert_eq!(map["pair"], "🎉");
        assert_eq!(map["e"], "é");
    }
}
