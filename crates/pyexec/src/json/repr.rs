//! Python's `repr()` of what `json.loads` makes, of a str and of a float.

use super::pystr::{PyStr, decode_string};
use super::scanner::PyScanner;

/// Python's `repr()` of the value `json.loads` makes of `raw` (text that
/// [`loads_check`](super::loads_check) accepted):
/// `{'a': [1, 2.5, nan, None, True]}`, strings quoted and escaped as
/// Python does, a repeated key's last value at its first place. Iterative.
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
