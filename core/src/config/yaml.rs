//! The spanned YAML tree: every node knows its line and column.
//!
//! serde-saphyr (pinned) parses the text; merge keys (`<<: *base`) are expanded by the parser,
//! an explicit key winning over a merged one, and repeated keys are kept so the walker can
//! report them. Scalars are typed the way Go's `yaml.v2` types them for Prometheus: a plain
//! `yes`/`on`/`y` carries both its boolean and its text, a number keeps its spelling (so
//! `010` and `0x10` are read as Go reads them), a quoted scalar is always a string.
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::units::parse_go_int;
use super::Position;

/// What `deserialize_any` gave; scalars other than strings are re-read from the source
/// text, so that `010` or `1e3` keep the spelling Go's YAML parser would see.
enum Raw {
    Null,
    Bool(bool),
    Number,
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(b))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_i128<E>(self, _: i128) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_u128<E>(self, _: u128) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
                Ok(Raw::Number)
            }
            fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
                Ok(Raw::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Raw, E> {
                Ok(Raw::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Raw::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = a.next_entry()? {
                    entries.push(entry);
                }
                Ok(Raw::Map(entries))
            }
        }
        d.deserialize_any(RawVisitor)
    }
}

/// A scalar: its text as Go's YAML parser would hand it to a string field.
#[derive(Debug, Clone)]
pub(super) struct Scalar {
    /// The value as a string.
    pub(super) text: String,
    /// Written without quotes (only plain scalars may be booleans or numbers).
    pub(super) plain: bool,
    /// The boolean the parser read, for YAML 1.1 spellings (`yes`, `on`, `y`).
    pub(super) boolean: Option<bool>,
    /// The YAML tag name, for type errors.
    pub(super) tag: &'static str,
}

/// What a node is.
#[derive(Debug, Clone)]
pub(super) enum Kind {
    /// `~`, `null`, or nothing.
    Null,
    /// A string, number or boolean.
    Scalar(Scalar),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, its entries in the order written, repeated keys included.
    Map(Vec<(Node, Node)>),
}

/// A YAML node with where its value is written.
#[derive(Debug, Clone)]
pub(super) struct Node {
    /// What the node is.
    pub(super) kind: Kind,
    /// Where its value starts.
    pub(super) pos: Position,
}

impl Node {
    /// The tag of the node, for type errors (`!!seq`, `!!map`, `!!str`, ...).
    pub(super) fn tag(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "!!null",
            Kind::Scalar(s) => s.tag,
            Kind::Seq(_) => "!!seq",
            Kind::Map(_) => "!!map",
        }
    }

    /// The scalar text, if a scalar.
    pub(super) fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }
}

/// The parser's budget for a text of `len` bytes: the node, event and scalar caps grow
/// with the text (a node takes at least two bytes of it, so a real file never meets them:
/// 100k jobs or 1M static targets load), never below serde-saphyr's defaults; what does not
/// grow with the text stays at the defaults: nesting depth (64), aliases, anchors and the
/// events an alias may replay (1M), so a billion laughs or a deep nest is refused early.
fn budget_for(len: usize) -> serde_saphyr::Budget {
    let mut b = serde_saphyr::Budget::default();
    b.max_nodes = b.max_nodes.max(len);
    b.max_events = b.max_events.max(len.saturating_mul(2));
    b.max_total_scalar_bytes = b.max_total_scalar_bytes.max(len);
    b
}

/// Parses `text` into a tree, or gives where and why it is not YAML.
pub(super) fn parse(text: &str) -> Result<Node, (Position, String)> {
    if text.trim().is_empty() {
        return Ok(Node {
            kind: Kind::Null,
            pos: Position { line: 1, column: 1 },
        });
    }
    let mut options = serde_saphyr::Options::default();
    // Duplicate keys reach the tree so they are reported per job, like everything else.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    options.budget = Some(budget_for(text.len()));
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(root) => Ok(convert(text, root)),
        Err(e) => {
            let position = e
                .location()
                .map(|l| Position {
                    line: l.line() as usize,
                    column: l.column() as usize,
                })
                .unwrap_or(Position { line: 1, column: 1 });
            let message = e.to_string();
            let message = message.lines().next().unwrap_or("invalid YAML").to_string();
            Err((position, format!("invalid YAML: {message}")))
        }
    }
}

fn convert(text: &str, spanned: Spanned<Raw>) -> Node {
    let location = if spanned.defined.line() > 0 {
        spanned.defined
    } else {
        spanned.referenced
    };
    let pos = Position {
        line: location.line() as usize,
        column: location.column() as usize,
    };
    let span = location.span();
    let source = match (span.byte_offset(), span.byte_len()) {
        (Some(offset), Some(len)) => text
            .get(offset as usize..(offset + len) as usize)
            .unwrap_or(""),
        _ => "",
    };
    let kind = match spanned.value {
        Raw::Null => Kind::Null,
        Raw::Bool(b) => Kind::Scalar(Scalar {
            text: if source.is_empty() {
                b.to_string()
            } else {
                source.to_string()
            },
            plain: true,
            boolean: Some(b),
            tag: "!!bool",
        }),
        Raw::Number => {
            let tag = if parse_go_int(source).is_some() {
                "!!int"
            } else {
                "!!float"
            };
            Kind::Scalar(Scalar {
                text: source.to_string(),
                plain: true,
                boolean: None,
                tag,
            })
        }
        Raw::Str(s) => {
            let plain = !source.starts_with(['"', '\'', '|', '>']);
            Kind::Scalar(Scalar {
                text: s,
                plain,
                boolean: None,
                tag: "!!str",
            })
        }
        Raw::Seq(items) => Kind::Seq(items.into_iter().map(|i| convert(text, i)).collect()),
        Raw::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (convert(text, k), convert(text, v)))
                .collect(),
        ),
    };
    Node { kind, pos }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_grows_with_the_text_so_large_files_load() {
        // 260k nodes: over serde-saphyr's default of 250k, within this text's budget.
        let text = format!("[{}1]", "1,".repeat(260_000));
        match parse(&text) {
            Ok(Node {
                kind: Kind::Seq(items),
                ..
            }) => assert_eq!(items.len(), 260_001),
            Ok(_) => panic!("not a sequence"),
            Err(e) => panic!("refused: {e:?}"),
        }
    }

    #[test]
    fn a_billion_laughs_and_a_deep_nest_are_refused_by_the_budget_and_the_depth_limit() {
        let mut laughs = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        let mut prev = 'a';
        for n in "bcdefghi".chars() {
            let refs = vec![format!("*{prev}"); 9].join(", ");
            laughs.push_str(&format!("{n}: &{n} [{refs}]\n"));
            prev = n;
        }
        // The budget bounds the work (no clock in the core's tests: how fast is a benchmark's
        // question); the refusals are what must hold.
        let (_, message) = parse(&laughs).map(|_| ()).unwrap_err();
        assert!(message.contains("budget breached"), "{message}");
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let (_, message) = parse(&deep).map(|_| ()).unwrap_err();
        assert!(message.contains("recursion limit"), "{message}");
    }
}
