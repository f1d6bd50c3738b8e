//! A YAML tree that remembers where every key and value is, and typed
//! accessors over it that report errors by field path and line.
//!
//! serde-saphyr parses the text into [`Node`]s wrapped in
//! [`serde_saphyr::Spanned`], which carries the line of each key and value.
//! The config is then read section by section through [`Section`] and
//! [`Field`] rather than derived serde structs: a derived struct would report
//! an unknown or mistyped field with a line but without the path leading to
//! it, and semantic checks made after deserializing (addresses, loopback rules,
//! port conflicts) need the line of each value anyway.

use std::fmt;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Location, MessageFormatter, Spanned, UserMessageFormatter};

use super::duration::parse_duration;

/// A problem found in the config: where it is and what is wrong. Becomes a
/// [`super::ConfigError`] once the file name is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Issue {
    pub(super) line: Option<usize>,
    pub(super) field: String,
    pub(super) message: String,
}

/// A parsed YAML value.
#[derive(Debug)]
pub(super) enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<String>, Spanned<Node>)>),
}

impl Node {
    /// How the value reads in a message ("found a mapping").
    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Int(_) => "a number",
            Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(i128::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Map(entries))
    }
}

/// Parses one YAML document. Syntax errors carry serde-saphyr's line.
///
/// Duplicate keys are passed through to the tree, so that [`Section`] can
/// report them with their field path.
pub(super) fn parse_document(text: &str) -> Result<Spanned<Node>, Issue> {
    let mut options = serde_saphyr::Options::default();
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options).map_err(|error| {
        let message = UserMessageFormatter.format_message(error.without_snippet());
        Issue {
            line: error.location().and_then(line_of),
            field: String::new(),
            // The formatter's text may hold control characters from the input.
            message: message
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        }
    })
}

/// The 1-based line of a location, if known.
fn line_of(location: Location) -> Option<usize> {
    usize::try_from(location.line())
        .ok()
        .filter(|line| *line > 0)
}

/// `parent.key`, or `key` at the top level.
fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// A YAML mapping being read as one config section (the top level,
/// `control`, `gateway.outlier`, …). All its keys were checked against the
/// section's known fields when it was opened.
pub(super) struct Section<'a> {
    path: String,
    line: Option<usize>,
    src: &'a str,
    entries: &'a [(Spanned<String>, Spanned<Node>)],
}

impl<'a> Section<'a> {
    /// The top level of the document, with its `known` fields.
    pub(super) fn root(
        doc: &'a Spanned<Node>,
        src: &'a str,
        known: &[&str],
    ) -> Result<Self, Issue> {
        let entries = match &doc.value {
            Node::Map(entries) => entries,
            Node::Null => {
                return Err(Issue {
                    line: None,
                    field: String::new(),
                    message: "the config is empty; it needs at least cluster, locality and dataDir"
                        .to_owned(),
                });
            }
            other => {
                return Err(Issue {
                    line: line_of(doc.referenced),
                    field: String::new(),
                    message: format!(
                        "expected a mapping of config fields (cluster: …, locality: …), found {}",
                        other.kind()
                    ),
                });
            }
        };
        Self::open(String::new(), None, src, entries, known)
    }

    /// The nested section under `key`; an absent or null `key` is an empty
    /// section, so every field in it takes its default.
    pub(super) fn section(&self, key: &str, known: &[&str]) -> Result<Section<'a>, Issue> {
        let path = join(&self.path, key);
        let Some((k, v)) = self.entry(key) else {
            return Self::open(path, None, self.src, &[], known);
        };
        match &v.value {
            Node::Map(entries) => Self::open(path, line_of(k.referenced), self.src, entries, known),
            Node::Null => Self::open(path, line_of(k.referenced), self.src, &[], known),
            other => Err(Issue {
                line: line_of(v.referenced),
                message: format!(
                    "expected a mapping with fields {}, found {}",
                    known.join(", "),
                    other.kind()
                ),
                field: path,
            }),
        }
    }

    fn open(
        path: String,
        line: Option<usize>,
        src: &'a str,
        entries: &'a [(Spanned<String>, Spanned<Node>)],
        known: &[&str],
    ) -> Result<Self, Issue> {
        for (index, (key, _)) in entries.iter().enumerate() {
            let issue = |message: String| Issue {
                line: line_of(key.referenced),
                field: join(&path, &key.value),
                message,
            };
            if !known.contains(&key.value.as_str()) {
                return Err(issue(unknown_field_message(&key.value, known)));
            }
            if let Some((first, _)) = entries[..index].iter().find(|(k, _)| k.value == key.value) {
                let first_line =
                    line_of(first.referenced).map_or(String::new(), |l| format!(" on line {l}"));
                return Err(issue(format!(
                    "duplicate key; it was already set{first_line}: keep one of them"
                )));
            }
        }
        Ok(Section {
            path,
            line,
            src,
            entries,
        })
    }

    fn entry(&self, key: &str) -> Option<&'a (Spanned<String>, Spanned<Node>)> {
        self.entries.iter().find(|(k, _)| k.value == key)
    }

    /// The path of `key` in this section (`gateway.outlier.maxEjection`).
    pub(super) fn path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The line of `key` if it is in the file, else the line of this section.
    pub(super) fn line(&self, key: &str) -> Option<usize> {
        self.entry(key)
            .and_then(|(k, _)| line_of(k.referenced))
            .or(self.line)
    }

    /// An issue about `key` (which may be absent: then this section's line).
    pub(super) fn issue(&self, key: &str, message: impl Into<String>) -> Issue {
        Issue {
            line: self.line(key),
            field: self.path(key),
            message: message.into(),
        }
    }

    /// The value of `key`, or `None` when it is absent or null.
    pub(super) fn field(&self, key: &str) -> Option<Field<'a>> {
        let (k, v) = self.entry(key)?;
        if matches!(v.value, Node::Null) {
            return None;
        }
        Some(Field::new(
            self.path(key),
            line_of(k.referenced),
            v,
            self.src,
        ))
    }

    /// `key` converted by `convert`, or `None` when absent or null.
    pub(super) fn get<T>(
        &self,
        key: &str,
        convert: impl FnOnce(&Field<'a>) -> Result<T, Issue>,
    ) -> Result<Option<T>, Issue> {
        self.field(key).map(|field| convert(&field)).transpose()
    }

    /// `key` converted by `convert`; an error showing `example` when absent.
    pub(super) fn require<T>(
        &self,
        key: &str,
        example: &str,
        convert: impl FnOnce(&Field<'a>) -> Result<T, Issue>,
    ) -> Result<T, Issue> {
        self.get(key, convert)?.ok_or_else(|| {
            self.issue(
                key,
                format!("missing required field; add it, for example `{example}`"),
            )
        })
    }
}

/// "unknown field; expected one of …", with a suggestion for a near miss
/// such as `peering_listen` or `peeringListn`.
fn unknown_field_message(key: &str, known: &[&str]) -> String {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    // Allow about one typo per four characters, so that short keys like `1`
    // are not "corrected" to unrelated ones like `ca`.
    let close = known.iter().find(|k| {
        let distance = edit_distance(&k.to_ascii_lowercase(), &key.to_ascii_lowercase());
        squash(k) == squash(key) || distance <= (k.len() / 4).max(1)
    });
    let hint = close.map_or(String::new(), |k| format!(" (did you mean {k}?)"));
    if known.is_empty() {
        return "unknown field; this section takes no fields".to_owned();
    }
    format!("unknown field{hint}; expected one of {}", known.join(", "))
}

/// Levenshtein distance, for "did you mean" hints on short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// One present, non-null value, with its field path and line.
pub(super) struct Field<'a> {
    path: String,
    line: Option<usize>,
    node: &'a Spanned<Node>,
    src: &'a str,
}

impl<'a> Field<'a> {
    fn new(path: String, key_line: Option<usize>, node: &'a Spanned<Node>, src: &'a str) -> Self {
        // Scalars point at their own line (which differs from the key's for
        // a value on the next line); containers at the line of their key.
        let line = match node.value {
            Node::Map(_) | Node::Seq(_) => key_line.or_else(|| line_of(node.referenced)),
            _ => line_of(node.referenced).or(key_line),
        };
        Field {
            path,
            line,
            node,
            src,
        }
    }

    /// The field path, such as `dns.upstreams[1]`.
    #[cfg(test)]
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The line of the value.
    pub(super) fn line(&self) -> Option<usize> {
        self.line
    }

    /// An issue at this field.
    pub(super) fn issue(&self, message: impl Into<String>) -> Issue {
        Issue {
            line: self.line,
            field: self.path.clone(),
            message: message.into(),
        }
    }

    fn wrong_type(&self, expected: &str) -> Issue {
        self.issue(format!(
            "expected {expected}, found {}",
            self.node.value.kind()
        ))
    }

    /// The value as text. Numbers and booleans are taken as written in the
    /// file (`zone: 1.10` is `"1.10"`, not `"1.1"`).
    pub(super) fn text(&self, expected: &str) -> Result<String, Issue> {
        let as_written = || {
            let span = self.node.referenced.span();
            let start = usize::try_from(span.byte_offset()?).ok()?;
            let len = usize::try_from(span.byte_len()?).ok()?;
            let raw = self.src.get(start..start.checked_add(len)?)?.trim();
            // An alias (`*a`) or anchor/tag prefix is not the value itself.
            (!raw.is_empty() && !raw.starts_with(['*', '&', '!'])).then(|| raw.to_owned())
        };
        match &self.node.value {
            Node::Str(text) => Ok(text.clone()),
            Node::Bool(b) => Ok(as_written().unwrap_or_else(|| b.to_string())),
            Node::Int(n) => Ok(as_written().unwrap_or_else(|| n.to_string())),
            Node::Float(x) => Ok(as_written().unwrap_or_else(|| x.to_string())),
            Node::Null | Node::Seq(_) | Node::Map(_) => Err(self.wrong_type(expected)),
        }
    }

    /// The value's text parsed by `parse`; its error message becomes the
    /// issue's message.
    pub(super) fn parse<T>(
        &self,
        expected: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, Issue> {
        parse(&self.text(expected)?).map_err(|message| self.issue(message))
    }

    /// A duration such as `3s` (see [`parse_duration`]).
    pub(super) fn duration(&self) -> Result<Duration, Issue> {
        if let Node::Int(n) = self.node.value
            && n != 0
        {
            return Err(self.issue(format!(
                "invalid duration {n}: it has no unit; write it with one, such as {n}s or {n}ms"
            )));
        }
        self.parse("a duration such as 3s", parse_duration)
    }

    /// `true` or `false`.
    pub(super) fn bool(&self) -> Result<bool, Issue> {
        match self.node.value {
            Node::Bool(b) => Ok(b),
            _ => Err(self.issue(format!(
                "expected true or false, found {}",
                self.text("true or false")
                    .map_or_else(|_| self.node.value.kind().to_owned(), |t| format!("{t:?}"))
            ))),
        }
    }

    /// A whole number in `min..=max`.
    pub(super) fn number<T: TryFrom<i128>>(&self, min: i128, max: i128) -> Result<T, Issue> {
        let range = format!("a whole number from {min} to {max}");
        let Node::Int(n) = self.node.value else {
            return Err(match self.text(&range) {
                Ok(text) => self.issue(format!("invalid number {text:?}: expected {range}")),
                Err(issue) => issue,
            });
        };
        if !(min..=max).contains(&n) {
            return Err(self.issue(format!("{n} is out of range: expected {range}")));
        }
        T::try_from(n).map_err(|_| self.issue(format!("{n} is out of range: expected {range}")))
    }

    /// A mapping value (such as one item of a list of entries) read as a
    /// section with its `known` fields; unknown keys are errors as in any
    /// section.
    pub(super) fn section(&self, known: &[&str]) -> Result<Section<'a>, Issue> {
        match &self.node.value {
            Node::Map(entries) => {
                Section::open(self.path.clone(), self.line, self.src, entries, known)
            }
            _ => Err(self.wrong_type(&format!("a mapping with fields {}", known.join(", ")))),
        }
    }

    /// The entries of a mapping, each value with its path
    /// (`registry.gatewaySelector.app`).
    pub(super) fn entries(&self, expected: &str) -> Result<Vec<(String, Field<'a>)>, Issue> {
        let Node::Map(entries) = &self.node.value else {
            return Err(self.wrong_type(expected));
        };
        Ok(entries
            .iter()
            .map(|(k, v)| {
                let path = join(&self.path, &k.value);
                (
                    k.value.clone(),
                    Field::new(path, line_of(k.referenced), v, self.src),
                )
            })
            .collect())
    }

    /// The items of a list, each with its path (`dns.upstreams[0]`).
    pub(super) fn items(&self, expected: &str) -> Result<Vec<Field<'a>>, Issue> {
        let Node::Seq(items) = &self.node.value else {
            return Err(self.wrong_type(expected));
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| Field::new(format!("{}[{i}]", self.path), None, item, self.src))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_miss_keys_get_a_suggestion() {
        let known = ["peeringListen", "adminListen"];
        assert!(
            unknown_field_message("peering_listen", &known).contains("did you mean peeringListen?")
        );
        assert!(unknown_field_message("adminListn", &known).contains("did you mean adminListen?"));
        assert!(!unknown_field_message("bogus", &known).contains("did you mean"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn values_keep_their_lines_and_written_form() {
        let src = "a:\n  b: 1.10\n  c:\n    - x\n    - 5\n";
        let doc = parse_document(src).expect("parses");
        let root = Section::root(&doc, src, &["a"]).expect("root");
        let a = root.section("a", &["b", "c"]).expect("a");
        let b = a.field("b").expect("b");
        assert_eq!((b.path(), b.line()), ("a.b", Some(2)));
        assert_eq!(b.text("text"), Ok("1.10".to_owned()));
        let items = a.field("c").expect("c").items("a list").expect("items");
        assert_eq!(items[1].path(), "a.c[1]");
        assert_eq!(items[1].line(), Some(5));
        assert_eq!(items[1].number::<u8>(0, 9), Ok(5));
    }

    #[test]
    fn duplicate_keys_name_both_lines() {
        let src = "a: 1\nb: 2\na: 3\n";
        let doc = parse_document(src).expect("parses");
        let issue = Section::root(&doc, src, &["a", "b"])
            .err()
            .expect("duplicate");
        assert_eq!((issue.field.as_str(), issue.line), ("a", Some(3)));
        assert!(issue.message.contains("line 1"), "{}", issue.message);
    }
}
