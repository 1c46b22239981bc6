//! The dialect checked without building anything ([`check_object`]) and
//! turned into a `serde_json` map ([`to_map`]).

use serde_json::{Map, Value};

use super::{MAX_DEPTH, hex4};

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
    let clean = if may_need_replacing(text) {
        std::borrow::Cow::Owned(representable(text))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
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

/// Whether [`representable`] could change `text`: it holds one of the
/// words it replaces, or an escape that could be a surrogate's (`\ud`,
/// `\uD`), anywhere, inside strings too. Far faster than the replacing
/// pass, which walks the text one character at a time (about 0.7 ms for
/// 100 KB of globals); where this says yes, that pass decides.
fn may_need_replacing(text: &str) -> bool {
    ["NaN", "Infinity", "\\ud", "\\uD"]
        .iter()
        .any(|word| text.contains(word))
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

    /// The quick check never says "nothing to replace" of a text the
    /// replacing pass would change: every string of up to three pieces
    /// (escapes of surrogates in both cases, a surrogate pair, the words,
    /// pieces of them) in an object beside the bare words or not. Fails
    /// when any of its four words is left out.
    #[test]
    fn the_quick_check_misses_nothing_the_replacing_pass_changes() {
        let pieces = [
            r"\\",
            r"\u00e9",
            r"\ud83c\udf89",
            r"\ud800",
            r"\uDC00",
            "N",
            "aN",
            "Inf",
            "inity",
            "ud",
            "x",
        ];
        let mut strings = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = strings
                .iter()
                .flat_map(|s| pieces.iter().map(move |p| format!("{s}{p}")))
                .collect();
            strings.extend(longer);
        }
        strings.dedup();
        let mut changed = 0;
        for s in &strings {
            for tail in ["1", "NaN", "-Infinity", "[Infinity]"] {
                let text = format!(r#"{{"k{s}": "{s}", "n": {tail}}}"#);
                check_object(&text).unwrap();
                let replaced = representable(&text);
                if replaced != text {
                    changed += 1;
                    assert!(may_need_replacing(&text), "{text}");
                }
            }
        }
        assert!(changed > 1000, "{changed}");
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
