//! Strict YAML reading with source positions, for every file a person writes (scenarios,
//! findings). Errors carry the line, column and field path so they can point at the mistake.
//!
//! Built on serde-saphyr: it reports positions for syntax and type errors and gives `Spanned`
//! values for semantic checks that run after parsing.

use std::cell::RefCell;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// Where in a source file a value was written. Line and column are 1-based; `offset` and `len`
/// are byte offsets into the text, for rendering a snippet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
    pub offset: usize,
    pub len: usize,
}

/// A value together with where it was written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Spanned<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        Spanned { value, pos }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let loc = s.referenced;
        let span = loc.span();
        Ok(Spanned {
            value: s.value,
            pos: Pos {
                line: loc.line() as u32,
                column: loc.column() as u32,
                offset: span.byte_offset().unwrap_or(0) as usize,
                len: span.byte_len().unwrap_or(0) as usize,
            },
        })
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// A YAML document that could not be read into the expected shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Field path such as `faults[1].params.percent`; empty at the document root.
    pub path: String,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Limits on what a document may cost to read, so a hostile or mistaken file (a billion
/// laughs, a 100 MB upload) is refused instead of exhausting memory.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bytes: 1 << 20 }
    }
}

/// Reads `text` strictly into `T`: unknown fields, wrong types and bad syntax are errors that
/// say where they are and what was expected.
pub fn from_str<T: DeserializeOwned>(text: &str, limits: Limits) -> Result<T, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError {
            path: String::new(),
            pos: Pos {
                line: 1,
                column: 1,
                offset: 0,
                len: 0,
            },
            message: format!(
                "the file is {} bytes; at most {} are accepted",
                text.len(),
                limits.max_bytes
            ),
        });
    }
    let options = serde_saphyr::options! { with_snippet: false };
    let path = RefCell::new(String::new());
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            *path.borrow_mut() = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| {
        let pos = match e.location() {
            Some(loc) => {
                let span = loc.span();
                Pos {
                    line: loc.line() as u32,
                    column: loc.column() as u32,
                    offset: span.byte_offset().unwrap_or(0) as usize,
                    len: span.byte_len().unwrap_or(0) as usize,
                }
            }
            None => Pos {
                line: 1,
                column: 1,
                offset: 0,
                len: 0,
            },
        };
        YamlError {
            path: clean_path(&path.borrow()),
            message: clean_message(&e.to_string(), pos),
            pos,
        }
    })
}

/// Where each node of a document was written, by field path (`faults[0].params.percent`), so
/// a problem found after parsing can point at the node itself rather than an ancestor.
#[derive(Debug, Default)]
pub struct Positions(std::collections::BTreeMap<String, Pos>);

impl Positions {
    /// Every node of `text` with its path; empty if the text does not parse as YAML.
    pub fn of(text: &str) -> Positions {
        let options = serde_saphyr::options! { with_snippet: false };
        let root = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
            Spanned::<Node>::deserialize(de)
        });
        let mut map = std::collections::BTreeMap::new();
        if let Ok(root) = root {
            walk(&root, String::new(), &mut map);
        }
        Positions(map)
    }

    /// The node at `path`, if the document has it.
    pub fn get(&self, path: &str) -> Option<Pos> {
        self.0.get(path).copied()
    }

    /// The node at `path` or, when it is missing, its nearest ancestor that is present.
    pub fn nearest(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.get(p) {
                return Some(pos);
            }
            p = &p[..p.rfind(['.', '['])?];
        }
    }
}

/// A YAML node with nothing kept but its shape, for [`Positions`].
enum Node {
    Map(Vec<(String, Spanned<Node>)>),
    Seq(Vec<Spanned<Node>>),
    Scalar,
}

fn walk(node: &Spanned<Node>, path: String, out: &mut std::collections::BTreeMap<String, Pos>) {
    match &node.value {
        Node::Map(entries) => {
            for (k, v) in entries {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(v, p, out);
            }
        }
        Node::Seq(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{path}[{i}]"), out);
            }
        }
        Node::Scalar => {}
    }
    out.insert(path, node.pos);
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_i128<E>(self, _: i128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_u128<E>(self, _: u128) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_str<E>(self, _: &str) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_bytes<E>(self, _: &[u8]) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Scalar)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = a.next_element()? {
                    items.push(v);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = a.next_key::<Key>()? {
                    entries.push((k.0, a.next_value()?));
                }
                Ok(Node::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// A mapping key of any scalar type, as text.
struct Key(String);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar key")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Key, E> {
                Ok(Key(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Key, E> {
                Ok(Key(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Renders `value` as YAML for files a person will edit (templates, examples).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|e| e.to_string())
}

/// serde_path_to_error reports `Spanned`'s inner field as `.value` and the root as `.`.
fn clean_path(raw: &str) -> String {
    let p = raw.trim_end_matches(".value");
    let p = p.replace(".value.", ".").replace(".value[", "[");
    if p == "." { String::new() } else { p }
}

/// Drops the position the parser appends (we show it ourselves), turns Rust type names into
/// words a scenario author knows, and leaves out the values it quotes: a message never echoes
/// the file (which may be a key given by mistake, or hold escape sequences).
fn clean_message(raw: &str, pos: Pos) -> String {
    let suffix = format!(" at line {}, column {}", pos.line, pos.column);
    let msg = raw.lines().next().unwrap_or(raw);
    let msg = msg.strip_suffix(&suffix).unwrap_or(msg);
    let words = [
        ("invalid u8", "expected a whole number from 0 to 255"),
        ("invalid u16", "expected a whole number from 0 to 65535"),
        (
            "invalid u32",
            "expected a whole number from 0 to 4294967295",
        ),
        ("invalid u64", "expected a whole number, 0 or more"),
        ("invalid i64", "expected a whole number"),
        ("invalid floating point", "expected a number"),
        ("expected string scalar", "expected a string"),
    ];
    for (from, to) in words {
        if msg == from {
            return to.to_string();
        }
    }
    crate::term::redact_quoted(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: Spanned<String>,
        port: Option<u16>,
        #[serde(default)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        percent: Spanned<f64>,
    }

    #[test]
    fn spans_point_at_values() {
        let d: Doc = from_str("name: web\nitems:\n  - percent: 12.5\n", Limits::default()).unwrap();
        assert_eq!(d.name.pos.line, 1);
        assert_eq!(d.name.pos.column, 7);
        assert_eq!(d.items[0].percent.pos.line, 3);
        assert_eq!(d.items[0].percent.pos.column, 14);
        assert_eq!(*d.items[0].percent, 12.5);
    }

    #[test]
    fn unknown_field_names_path_and_position() {
        let e = from_str::<Doc>(
            "name: web\nitems:\n  - percent: 1\n    pct: 2\n",
            Limits::default(),
        )
        .unwrap_err();
        assert_eq!(e.path, "items[0].pct");
        assert_eq!((e.pos.line, e.pos.column), (4, 5));
        assert!(e.message.contains("unknown field `pct`"), "{}", e.message);
    }

    #[test]
    fn wrong_type_says_what_was_expected() {
        let e = from_str::<Doc>("name: web\nport: 70000\n", Limits::default()).unwrap_err();
        assert_eq!(e.path, "port");
        assert_eq!(e.message, "expected a whole number from 0 to 65535");
        let e = from_str::<Doc>("name: web\nitems:\n  - percent: ten\n", Limits::default())
            .unwrap_err();
        assert_eq!(e.path, "items[0].percent");
        assert_eq!(e.message, "expected a number");
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let text = format!("name: {}\n", "x".repeat(100));
        let e = from_str::<Doc>(&text, Limits { max_bytes: 50 }).unwrap_err();
        assert!(e.message.contains("at most 50"), "{}", e.message);
    }

    #[test]
    fn positions_name_every_node_by_path() {
        let text = "name: web\nitems:\n  - percent: 1\n  - {percent: 2, deep: [a, b]}\n";
        let p = Positions::of(text);
        let at = |path: &str| p.get(path).map(|x| (x.line, x.column));
        assert_eq!(at("name"), Some((1, 7)));
        assert_eq!(at("items[0].percent"), Some((3, 14)));
        assert_eq!(at("items[1]"), Some((4, 5)));
        assert_eq!(at("items[1].deep[1]"), Some((4, 28)));
        assert_eq!(at("items[7]"), None);
        let near = p.nearest("items[1].nothing.here").map(|x| x.line);
        assert_eq!(near, Some(4));
        assert!(Positions::of("a: [").get("a").is_none());
    }
}
