//! The scanner of CPython 3.11's `json` (the C one), iterative.

use super::loads::{Kind, LoadsError, MAX_INT_DIGITS, Raw};
use super::{MAX_DEPTH, hex4};

/// Where a scanned value sits in its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    Key,
    Value,
}

pub(super) struct PyScanner<'a> {
    text: &'a str,
    b: &'a [u8],
}

impl<'a> PyScanner<'a> {
    pub(super) fn new(text: &'a str) -> PyScanner<'a> {
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

    pub(super) fn space(&self, mut i: usize) -> usize {
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
    pub(super) fn string(&self, begin: usize) -> Result<usize, LoadsError> {
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
    pub(super) fn number(&self, start: usize) -> Result<(usize, bool), LoadsError> {
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
    pub(super) fn run(
        &self,
        mut seen: impl FnMut(usize, Slot, Raw<'a>),
    ) -> Result<Raw<'a>, LoadsError> {
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
