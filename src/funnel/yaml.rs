//! The one door to YAML: parsing (`serde_yaml`) and finding where a key is written.
//!
//! Config, front matter, sample leads and rule tests all read YAML through here, so
//! replacing the deprecated crate with a successor is a one-file change. Positions
//! come from the parser itself (it walks to the node and reports its mark), never
//! from searching the text, so block and flow style, quotes and comments all count.

use serde::Deserializer;
use serde::de::{DeserializeOwned, Error as _};
use std::fmt;

/// A YAML document or any node of one.
pub type Value = serde_yaml::Value;
/// A YAML mapping.
pub type Mapping = serde_yaml::Mapping;

/// A YAML problem with the position it was found at (1-based line and column).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct YamlError {
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// What to do about it, when known.
    pub hint: Option<String>,
}

/// Deserialises YAML, keeping the position of the first error.
pub fn parse<T: DeserializeOwned>(src: &str) -> Result<T, YamlError> {
    serde_yaml::from_str(src).map_err(|e| yaml_error(src, &e))
}

/// Parses a whole document into a [`Value`], keeping the position of a syntax error.
pub fn parse_document(src: &str) -> Result<Value, YamlError> {
    parse(src)
}

/// A problem found while turning a [`Value`] into a type: where in the node (the
/// path of keys and items to the bad one) and what.
#[derive(Debug, Clone)]
pub struct ValueError {
    pub path: Vec<Step>,
    pub message: String,
}

/// Turns a parsed node into `T`, with the path to the first bad key.
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, ValueError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| ValueError {
        path: e
            .path()
            .iter()
            .filter_map(|s| match s {
                serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                _ => None,
            })
            .collect(),
        message: e.inner().to_string(),
    })
}

/// One step of a path into a YAML document: a mapping's key or a sequence's item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// A path of mapping keys.
pub fn keys(ks: &[&str]) -> Vec<Step> {
    ks.iter().map(|k| Step::Key(k.to_string())).collect()
}
/// A path as the user reads it: `limits.expire_after`, `campaigns[0].template`.
pub fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}
/// Removes the mapping entry at `path`; false when there is none.
pub fn remove(v: &mut Value, path: &[Step]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = v;
    for s in parents {
        let next = match (s, cur) {
            (Step::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str()),
            (Step::Index(i), Value::Sequence(s)) => s.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    match (last, cur) {
        (Step::Key(k), Value::Mapping(m)) => m.remove(k.as_str()).is_some(),
        _ => false,
    }
}

/// A mapping key as text (`3` for a number key).
pub fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}
/// The 1-based line and column where the node at `path` is written in `src`: a mapping
/// entry's key, a sequence's item; None when it is not written there. The YAML parser
/// itself walks the path, so block and flow style, quotes and comments all count.
pub fn position_in(src: &str, path: &[Step]) -> Option<(usize, usize)> {
    if path.is_empty() {
        return None;
    }
    let d = serde_yaml::Deserializer::from_str(src);
    let Err(e) = serde::de::DeserializeSeed::deserialize(Find(path), d) else {
        return None;
    };
    if !e.to_string().contains(FOUND) {
        return None;
    }
    e.location().map(|l| (l.line(), l.column()))
}

/// The position of `path`, else of the nearest enclosing node that is written; (1, 1)
/// when none is.
pub fn position_or_parent(src: &str, path: &[Step]) -> (usize, usize) {
    (1..=path.len())
        .rev()
        .find_map(|n| position_in(src, &path[..n]))
        .unwrap_or((1, 1))
}

/// The error that stops the walk where the node is: serde_yaml gives it the position
/// of the scalar or collection being read.
const FOUND: &str = "\u{1}found";

struct Find<'p>(&'p [Step]);

impl<'de> serde::de::DeserializeSeed<'de> for Find<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.0.is_empty() {
            d.deserialize_any(Here)
        } else {
            d.deserialize_any(self)
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Find<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a mapping or a sequence")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let Some(Step::Key(want)) = self.0.first() else {
            return Err(A::Error::custom("not here"));
        };
        let last = self.0.len() == 1;
        while let Some(hit) = m.next_key_seed(KeyIs { want, last })? {
            if hit {
                return m.next_value_seed(Find(&self.0[1..]));
            }
            m.next_value::<serde::de::IgnoredAny>()?;
        }
        Err(A::Error::custom("not here"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let Some(Step::Index(want)) = self.0.first() else {
            return Err(A::Error::custom("not here"));
        };
        for _ in 0..*want {
            if s.next_element::<serde::de::IgnoredAny>()?.is_none() {
                return Err(A::Error::custom("not here"));
            }
        }
        s.next_element_seed(Find(&self.0[1..]))?;
        Err(A::Error::custom("not here"))
    }
}

/// A mapping key: true when it is the wanted one; the wanted last key stops the walk
/// with its own position.
struct KeyIs<'a> {
    want: &'a str,
    last: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<bool, E> {
        match (v == self.want, self.last) {
            (true, true) => Err(E::custom(FOUND)),
            (hit, _) => Ok(hit),
        }
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<bool, E> {
        self.visit_str(&v.to_string())
    }
}

/// Any node: stops the walk with the node's position.
struct Here;

impl<'de> serde::de::Visitor<'de> for Here {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(FOUND))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(A::Error::custom(FOUND))
    }
}

/// A serde_yaml error with its position. An unclosed quote makes the parser read on
/// to the next quote or the end of the file and complain there: point at the quote
/// that opened instead.
fn yaml_error(src: &str, e: &serde_yaml::Error) -> YamlError {
    let (line, col) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    // "… at line 9 column 1, while scanning a quoted scalar at line 4 column 9": the
    // positions are shown by the diagnostic itself.
    let mut message = String::new();
    for (i, part) in e.to_string().split(" at line ").enumerate() {
        if i == 0 {
            message.push_str(part);
        } else if i > 1 {
            // A context mark (where the flow sequence or quote began): keep it.
            message.push_str(" at line ");
            message.push_str(part);
        } else {
            let rest = part
                .split_once(" column ")
                .map(|(_, r)| r.trim_start_matches(|c: char| c.is_ascii_digit()))
                .unwrap_or("");
            message.push_str(rest);
        }
    }
    let about_quotes = message.contains("quoted scalar");
    if let Some((ql, qc, quote)) =
        unclosed_quote(src, line).filter(|(ql, _, _)| *ql < line || about_quotes)
    {
        return YamlError {
            line: ql,
            col: qc,
            message: format!(
                "this {quote} is not closed on its line, so the YAML reader took the lines after it as part of the text (then: {message}, at line {line})"
            ),
            hint: Some(format!(
                "close the quote on line {ql}: a value in quotes ends with the same quote"
            )),
        };
    }
    let tab = src
        .lines()
        .nth(line.saturating_sub(1))
        .is_some_and(|l| l.contains('\t'));
    let hint = if tab {
        "indent with spaces: YAML does not allow tabs for indentation".to_string()
    } else if message.contains("expected ',' or '}'") || message.contains("expected ',' or ']'") {
        "inside { } and [ ], items are separated by commas and every quote and bracket is closed: check this line and the one before".to_string()
    } else {
        "check the YAML around here: indentation with spaces, a space after each `key:`, closed quotes and brackets".to_string()
    };
    YamlError {
        line,
        col,
        message,
        hint: Some(hint),
    }
}

/// The first quote at or before line `upto` that opens a value and is not closed on
/// its line: (line, column, "double quote" or "single quote").
fn unclosed_quote(src: &str, upto: usize) -> Option<(usize, usize, &'static str)> {
    for (i, line) in src.lines().enumerate().take(upto) {
        let mut open: Option<(char, usize)> = None;
        let mut prev = ' ';
        let mut chars = line.char_indices().peekable();
        let mut col = 0;
        while let Some((_, c)) = chars.next() {
            col += 1;
            match open {
                Some(('"', _)) if c == '\\' => {
                    chars.next();
                    col += 1;
                }
                Some((q, _)) if c == q => {
                    if q == '\'' && chars.peek().map(|x| x.1) == Some('\'') {
                        chars.next();
                        col += 1;
                    } else {
                        open = None;
                    }
                }
                Some(_) => {}
                None if c == '#' && prev.is_whitespace() => break,
                None if (c == '"' || c == '\'')
                    && (prev.is_whitespace() || "[{,:-".contains(prev)) =>
                {
                    // A quote starts a value only after `: `, `- `, a flow bracket or a
                    // comma (or at the start of the line).
                    let before = line[..line.char_indices().nth(col - 1).map(|x| x.0).unwrap_or(0)]
                        .trim_end();
                    if before.is_empty()
                        || before.ends_with(':')
                        || before.ends_with('-')
                        || before.ends_with('[')
                        || before.ends_with('{')
                        || before.ends_with(',')
                    {
                        open = Some((c, col));
                    }
                }
                None => {}
            }
            prev = c;
        }
        if let Some((q, at)) = open {
            let what = if q == '"' {
                "double quote"
            } else {
                "single quote"
            };
            return Some((i + 1, at, what));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# a comment\nfunnel:\n  stages: [a, b]\nlimits: { per_lead: { max: 3, within: 7d }, quiet_hours: x }\ncampaigns:\n  - id: one\n    template: t\n  - id: two\n    'template': u\n";

    #[test]
    fn the_position_of_a_key_is_where_it_is_written() {
        assert_eq!(position_in(DOC, &keys(&["funnel"])), Some((2, 1)));
        assert_eq!(position_in(DOC, &keys(&["funnel", "stages"])), Some((3, 3)));
        // Flow style and nesting.
        assert_eq!(
            position_in(DOC, &keys(&["limits", "per_lead", "within"])),
            Some((4, 31))
        );
        // Items of a sequence, and a quoted key.
        let second = vec![
            Step::Key("campaigns".into()),
            Step::Index(1),
            Step::Key("template".into()),
        ];
        assert_eq!(position_in(DOC, &second), Some((9, 5)));
        assert_eq!(position_in(DOC, &keys(&["http"])), None);
        assert_eq!(position_in(DOC, &[]), None);
    }

    #[test]
    fn an_unwritten_key_is_placed_at_its_nearest_written_parent() {
        assert_eq!(
            position_or_parent(DOC, &keys(&["funnel", "initial"])),
            (2, 1)
        );
        assert_eq!(position_or_parent(DOC, &keys(&["http", "listen"])), (1, 1));
        assert_eq!(position_or_parent("not: [valid", &keys(&["not"])), (1, 1));
    }

    #[test]
    fn a_syntax_error_has_its_position_and_a_hint() {
        let e = parse_document("a: 1\nb: \"open\nc: 2\n").unwrap_err();
        assert_eq!((e.line, e.col), (2, 4), "{e}");
        assert!(e.message.contains("double quote is not closed"), "{e}");
        let e = parse_document("a:\n\tb: 1\n").unwrap_err();
        assert!(e.hint.unwrap().contains("tabs"));
    }

    #[test]
    fn a_bad_value_names_its_path() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct S {
            xs: Vec<u32>,
        }
        let v = parse_document("xs: [1, two]").unwrap();
        let e = from_value::<S>(v).unwrap_err();
        assert_eq!(e.path, vec![Step::Key("xs".into()), Step::Index(1)]);
        assert!(e.message.contains("invalid type"), "{}", e.message);
        assert_eq!(dotted(&e.path), "xs[1]");
    }
}
