//! The walker: reads a mapping of the YAML tree against a section's table of fields.
//!
//! A section (a job, `tls_config`, one `consul_sd_configs` entry, ...) is a draft type that
//! implements [`Section`]: its table lists one [`Field`] per key, and a row's `read` takes the
//! key's value, reads it with one of the walker's typed readers ([`Walker::string`],
//! [`Walker::duration`], [`Walker::section`] for a nested section, ...) and stores it in the
//! draft. [`Walker::section`] does the rest for every section alike: a value that is not a
//! mapping, repeated keys, keys of no row (ignored, unsupported or unknown), and then the
//! section's `finish`, which checks the fields together and gives the value. A row reads:
//!
//! ```text
//! row("sample_limit", |w, v, p, d| d.job.sample_limit = w.uint(v, p).unwrap_or_default()),
//! ```
//!
//! (`w` the walker, `v` the value, `p` its path, `d` the draft.)
//!
//! Every read carries the [`Path`] of its value from the document root, so an error names
//! its field completely: `scrape_configs[0].consul_sd_configs[1].tls_config.ca_file`.

use std::collections::BTreeMap;
use std::time::Duration;

use super::units::{parse_duration, parse_go_int};
use super::yaml::{Kind, Node};
use super::{ConfigError, Position};

/// Where a value is in the document: keys joined by `.`, list indexes in brackets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Path(String);

impl Path {
    /// The document itself.
    pub(super) fn root() -> Path {
        Path(String::new())
    }

    /// The value under `key` of the mapping here.
    pub(super) fn key(&self, key: &str) -> Path {
        if self.0.is_empty() {
            Path(key.to_string())
        } else {
            Path(format!("{}.{key}", self.0))
        }
    }

    /// The item `index` of the list here.
    pub(super) fn index(&self, index: usize) -> Path {
        Path(format!("{}[{index}]", self.0))
    }

    /// The path as written in errors.
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// One row of a section's table: a key, and how its value is read into the draft `D`.
///
/// `read` gets the walker (for its readers and its errors), the value, the value's path, and
/// the draft to store into. A value it cannot read leaves an error, and then the section
/// gives no value, whatever the row stored.
pub(super) struct Field<D> {
    /// The YAML key.
    pub(super) key: &'static str,
    /// Reads the value of `key` into the draft.
    pub(super) read: fn(&mut Walker<'_>, &Node, &Path, &mut D),
}

/// The keys of a section, as an object: what a section lends to another that writes its keys
/// inline (Go's `yaml:",inline"`, as the HTTP client's keys in a job).
pub(super) trait Keys {
    /// Reads `value` into `self` if `key` is one of this section's keys; false if it is not.
    fn read_key(&mut self, w: &mut Walker<'_>, key: &str, value: &Node, path: &Path) -> bool;
}

/// A section of the configuration, read through its table of fields.
pub(super) trait Section: Sized + 'static {
    /// What the section gives once read and checked.
    type Value;

    /// One row per key.
    const FIELDS: &'static [Field<Self>];

    /// Keys that Prometheus knows and that are accepted and ignored here.
    const IGNORED: &'static [&'static str] = &[];

    /// Whether a key of no row is one of Prometheus's that scrapepool does not implement
    /// (named as such in the error) rather than an unknown one.
    fn unsupported(key: &str) -> bool {
        super::job::UNSUPPORTED_FIELDS.contains(&key)
    }

    /// Another section whose keys are written inline in this one.
    fn inline(&mut self) -> Option<&mut dyn Keys> {
        None
    }

    /// Checks the fields together and gives the value. `node` is the section's mapping,
    /// `clean` says whether reading its keys left no error.
    fn finish(
        self,
        w: &mut Walker<'_>,
        node: &Node,
        path: &Path,
        clean: bool,
    ) -> Option<Self::Value>;
}

impl<S: Section> Keys for S {
    fn read_key(&mut self, w: &mut Walker<'_>, key: &str, value: &Node, path: &Path) -> bool {
        if let Some(field) = S::FIELDS.iter().find(|f| f.key == key) {
            (field.read)(w, value, path, self);
            return true;
        }
        match self.inline() {
            Some(inline) => inline.read_key(w, key, value, path),
            None => false,
        }
    }
}

/// Walks the YAML tree, collecting every error with its position and path.
pub(super) struct Walker<'a> {
    origin: &'a str,
    /// The job being read, named in every error; empty outside a job.
    pub(super) job: String,
    /// Every error so far, in the order found.
    pub(super) errors: Vec<ConfigError>,
    /// Errors of static targets that are URLs, which stand only if their job turns out to
    /// have no `relabel_configs` (relabeling may rewrite the address).
    pub(super) url_targets: Vec<ConfigError>,
    /// The job being read validates names as `legacy` (its relabel rules check target
    /// labels with the old character set).
    pub(super) legacy_names: bool,
}

impl<'a> Walker<'a> {
    /// A walker for the text that came from `origin`.
    pub(super) fn new(origin: &'a str) -> Walker<'a> {
        Walker {
            origin,
            job: String::new(),
            errors: Vec::new(),
            url_targets: Vec::new(),
            legacy_names: false,
        }
    }

    /// Reports `message` about the value at `path`, written at `position`.
    pub(super) fn err(&mut self, path: &Path, position: Position, message: impl Into<String>) {
        self.errors.push(ConfigError {
            origin: self.origin.to_string(),
            job: self.job.clone(),
            field: path.as_str().to_string(),
            position,
            message: message.into(),
        });
    }

    /// Notes that the static target at `path` is a URL; see [`Walker::url_targets`].
    pub(super) fn url_target(&mut self, path: &Path, position: Position, message: String) {
        self.err(path, position, message);
        let error = self.errors.pop();
        self.url_targets.extend(error);
    }

    /// Reports a value of the wrong YAML type, in Go's `yaml.v2` words.
    pub(super) fn type_err(&mut self, path: &Path, node: &Node, want: &str) {
        let message = match &node.kind {
            Kind::Scalar(s) => format!("cannot unmarshal {} `{}` into {want}", s.tag, s.text),
            _ => format!("cannot unmarshal {} into {want}", node.tag()),
        };
        self.err(path, node.pos, message);
    }

    /// Reads a section: `node` must be a mapping (a null is an empty one, as in Go), each of
    /// its keys is read by the row of `S`'s table (or of its inline section), then `finish`
    /// checks the whole. `None` when the section has an error; all of them are reported.
    pub(super) fn section<S: Section>(
        &mut self,
        node: &Node,
        path: &Path,
        mut draft: S,
    ) -> Option<S::Value> {
        let entries = self.map(node, path)?;
        let before = self.errors.len();
        self.keys(entries, path, &mut draft);
        let clean = self.errors.len() == before;
        let value = draft.finish(self, node, path, clean);
        if self.errors.len() == before {
            value
        } else {
            None
        }
    }

    /// Reads the keys of a mapping into `draft`, without the section's `finish`: for the
    /// document, whose jobs are read one by one after its `global:` section.
    pub(super) fn keys<S: Section>(
        &mut self,
        entries: &[(Node, Node)],
        path: &Path,
        draft: &mut S,
    ) {
        for (key, value) in entries {
            let name = key.text().unwrap_or("");
            if draft.read_key(self, name, value, &path.key(name)) || S::IGNORED.contains(&name) {
                continue;
            }
            let name = key.text().unwrap_or("?");
            let message = if S::unsupported(name) {
                format!("field {name:?} is not supported by scrapepool")
            } else {
                format!("unknown field {name:?}")
            };
            self.err(&path.key(name), key.pos, message);
        }
    }

    /// The entries of a mapping (a null is an empty mapping, as in Go); reports repeated keys.
    pub(super) fn map<'n>(&mut self, node: &'n Node, path: &Path) -> Option<&'n [(Node, Node)]> {
        match &node.kind {
            Kind::Null => Some(&[]),
            Kind::Map(entries) => {
                let mut seen: BTreeMap<&str, Position> = BTreeMap::new();
                for (key, _) in entries {
                    let Some(name) = key.text() else { continue };
                    if let Some(first) = seen.get(name) {
                        let message = format!(
                            "key {name:?} already set in this mapping at line {}",
                            first.line
                        );
                        self.err(&path.key(name), key.pos, message);
                    } else {
                        seen.insert(name, key.pos);
                    }
                }
                Some(entries)
            }
            _ => {
                self.type_err(path, node, "a mapping");
                None
            }
        }
    }

    /// The items of a list (a null is an empty list).
    pub(super) fn seq<'n>(&mut self, node: &'n Node, path: &Path) -> Option<&'n [Node]> {
        match &node.kind {
            Kind::Null => Some(&[]),
            Kind::Seq(items) => Some(items),
            _ => {
                self.type_err(path, node, "a list");
                None
            }
        }
    }

    /// Reads each item of a list with `read`, at its own path; keeps the items read.
    pub(super) fn each<T>(
        &mut self,
        node: &Node,
        path: &Path,
        mut read: impl FnMut(&mut Self, &Node, &Path) -> Option<T>,
    ) -> Vec<T> {
        let Some(items) = self.seq(node, path) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.extend(read(self, item, &path.index(i)));
        }
        out
    }

    /// A string: any scalar, in its written spelling; a null is empty.
    pub(super) fn string(&mut self, node: &Node, path: &Path) -> Option<String> {
        match &node.kind {
            Kind::Null => Some(String::new()),
            Kind::Scalar(s) => Some(s.text.clone()),
            _ => {
                self.type_err(path, node, "string");
                None
            }
        }
    }

    /// A non-empty string, or `None` (also for an empty one).
    pub(super) fn non_empty(&mut self, node: &Node, path: &Path) -> Option<String> {
        self.string(node, path).filter(|s| !s.is_empty())
    }

    /// A secret: like a string, but its value is never written into an error.
    pub(super) fn secret(&mut self, node: &Node, path: &Path) -> Option<super::Secret> {
        match &node.kind {
            Kind::Null => Some(super::Secret::default()),
            Kind::Scalar(s) => Some(super::Secret(s.text.clone())),
            _ => {
                let message = format!("cannot unmarshal {} into a secret string", node.tag());
                self.err(path, node.pos, message);
                None
            }
        }
    }

    /// A boolean: a plain scalar Go's `yaml.v2` reads as one (`true`, `yes`, `on`, `y`, ...).
    pub(super) fn boolean(&mut self, node: &Node, path: &Path) -> Option<bool> {
        match &node.kind {
            Kind::Null => Some(false),
            Kind::Scalar(s) if s.plain && s.boolean.is_some() => s.boolean,
            _ => {
                self.type_err(path, node, "bool");
                None
            }
        }
    }

    /// A signed integer, in Go's spellings.
    pub(super) fn int(&mut self, node: &Node, path: &Path) -> Option<i64> {
        match &node.kind {
            Kind::Null => Some(0),
            Kind::Scalar(s) if s.plain => match parse_go_int(&s.text) {
                Some(v) if i64::try_from(v).is_ok() => Some(v as i64),
                _ => {
                    self.type_err(path, node, "int");
                    None
                }
            },
            _ => {
                self.type_err(path, node, "int");
                None
            }
        }
    }

    /// A float, as Go's `yaml.v2` reads one into a `float64` (integers too).
    pub(super) fn float(&mut self, node: &Node, path: &Path) -> Option<f64> {
        match &node.kind {
            Kind::Null => Some(0.0),
            Kind::Scalar(s) if s.plain => {
                let text = s.text.replace('_', "");
                let parsed = match text.as_str() {
                    ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Some(f64::INFINITY),
                    "-.inf" | "-.Inf" | "-.INF" => Some(f64::NEG_INFINITY),
                    ".nan" | ".NaN" | ".NAN" => Some(f64::NAN),
                    t => t
                        .parse::<f64>()
                        .ok()
                        .filter(|_| !t.contains(['i', 'I', 'n', 'N']))
                        .or_else(|| parse_go_int(t).map(|v| v as f64)),
                };
                parsed.or_else(|| {
                    self.type_err(path, node, "float64");
                    None
                })
            }
            _ => {
                self.type_err(path, node, "float64");
                None
            }
        }
    }

    /// An unsigned integer, in Go's spellings (`0x10`, `010`, `1_000`).
    pub(super) fn uint(&mut self, node: &Node, path: &Path) -> Option<u64> {
        match &node.kind {
            Kind::Null => Some(0),
            Kind::Scalar(s) if s.plain => match parse_go_int(&s.text) {
                Some(v) if v >= 0 => Some(v as u64),
                _ => {
                    self.type_err(path, node, "uint");
                    None
                }
            },
            _ => {
                self.type_err(path, node, "uint");
                None
            }
        }
    }

    /// A duration; null (as in Go) leaves the zero value, which means "unset".
    pub(super) fn duration(&mut self, node: &Node, path: &Path) -> Option<Duration> {
        if let Kind::Null = node.kind {
            return Some(Duration::ZERO);
        }
        let text = self.string(node, path)?;
        match parse_duration(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(path, node.pos, e);
                None
            }
        }
    }

    /// A list of strings; `None` if any item is not one.
    pub(super) fn string_list(&mut self, node: &Node, path: &Path) -> Option<Vec<String>> {
        let items = self.seq(node, path)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(item, &path.index(i)) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A list of strings, each of which must pass `valid`; every item that does not is an
    /// error at its own position, with `message(item)`. The list is kept either way.
    pub(super) fn checked_string_list(
        &mut self,
        node: &Node,
        path: &Path,
        valid: fn(&str) -> bool,
        message: fn(&str) -> String,
    ) -> Option<Vec<String>> {
        let list = self.string_list(node, path)?;
        let items = self.seq(node, path).unwrap_or(&[]);
        for (i, item) in list.iter().enumerate() {
            if !valid(item) {
                let pos = items.get(i).map_or(node.pos, |n| n.pos);
                self.err(&path.index(i), pos, message(item));
            }
        }
        Some(list)
    }

    /// A mapping of strings to strings; `None` if any key or value is not a string.
    pub(super) fn string_map(
        &mut self,
        node: &Node,
        path: &Path,
    ) -> Option<BTreeMap<String, String>> {
        let entries = self.map(node, path)?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in entries {
            let Some(name) = self.string(key, path) else {
                ok = false;
                continue;
            };
            match self.string(value, &path.key(&name)) {
                Some(v) => {
                    out.insert(name, v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
}

/// Where the value of `key` is written in a mapping (its last occurrence).
pub(super) fn value_position(node: &Node, key: &str) -> Option<Position> {
    match &node.kind {
        Kind::Map(entries) => entries
            .iter()
            .rev()
            .find(|(k, _)| k.text() == Some(key))
            .map(|(_, v)| v.pos),
        _ => None,
    }
}

/// A row of a table: `key`, read by `read`.
pub(super) const fn row<D>(
    key: &'static str,
    read: fn(&mut Walker<'_>, &Node, &Path, &mut D),
) -> Field<D> {
    Field { key, read }
}
