//! Strings as `json.loads` decodes them, lone surrogates included.

use super::hex4;

/// A string as `json.loads` decodes it: code points, which may include
/// lone surrogates (`"\ud800"`) that a Rust `String` cannot hold; kept as
/// generalized UTF-8 (WTF-8).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PyStr(pub(super) Vec<u8>);

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
