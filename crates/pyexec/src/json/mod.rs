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

mod check;
mod loads;
mod pystr;
mod repr;
mod scanner;

pub use check::{JsonError, check_object, to_map};
pub use loads::{
    Kind, LoadsError, MAX_INT_DIGITS, Member, Raw, array_items, loads_check, top_level,
};
pub use pystr::{PyStr, decode_string};
pub use repr::{py_float_repr, py_repr, repr_str};

/// Deepest nesting accepted. Python's own `json` stops at its recursion
/// limit (1000 by default), so nothing CodeJail could carry is refused.
pub const MAX_DEPTH: usize = 2000;

fn hex4(h: &[u8]) -> u32 {
    h.iter().fold(0, |acc, &d| {
        acc * 16 + char::from(d).to_digit(16).unwrap_or(0)
    })
}
