//! Label sets: the identity of a series and of a target.

use std::fmt;

/// One label: a name and a value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Label {
    /// The label's name, e.g. `instance` or `__address__`.
    pub name: String,
    /// The label's value; may be empty only transiently (empty values mean "absent").
    pub value: String,
}

/// A label set, kept sorted by name with unique names, as Prometheus's `labels.Labels`.
///
/// Sorted storage makes equality, hashing and the canonical encoding independent of the
/// order in which labels were added.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Vec<Label>);

impl Labels {
    /// The empty label set.
    pub fn new() -> Labels {
        Labels(Vec::new())
    }

    /// Builds a set from pairs; a later pair wins over an earlier one with the same name, and
    /// pairs with an empty value are left out (an empty value means "no such label").
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut labels = Labels::new();
        for (n, v) in pairs {
            labels.set(n.into(), v.into());
        }
        labels
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.find(name).ok().map(|i| self.0[i].value.as_str())
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: String, value: String) {
        match self.find(&name) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].value = value,
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, Label { name, value }),
        }
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.find(name).ok().map(|i| self.0.remove(i).value)
    }

    /// Keeps only the labels for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&Label) -> bool) {
        self.0.retain(|l| keep(l));
    }

    /// The labels, sorted by name.
    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels as a sorted slice.
    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }

    /// Appends the canonical byte encoding: for each label, name, `0xff`, value, `0xff`.
    ///
    /// `0xff` never occurs in valid UTF-8, so the encoding is unambiguous.
    pub fn encode_canonical(&self, out: &mut Vec<u8>) {
        for l in &self.0 {
            out.extend_from_slice(l.name.as_bytes());
            out.push(0xff);
            out.extend_from_slice(l.value.as_bytes());
            out.push(0xff);
        }
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|l| l.name.as_str().cmp(name))
    }
}

impl fmt::Display for Labels {
    /// Prometheus's notation: `{a="1", b="2"}`, a name that is no legacy label name
    /// quoted (`{"my.label"="1"}`), as Prometheus 3.16's `labels.String`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if is_valid_label_name(&l.name) {
                write!(f, "{}={:?}", l.name, l.value)?;
            } else {
                write!(f, "{:?}={:?}", l.name, l.value)?;
            }
        }
        f.write_str("}")
    }
}

impl serde::Serialize for Labels {
    /// As a JSON object, in name order (the shape of Prometheus's API).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for l in &self.0 {
            m.serialize_entry(&l.name, &l.value)?;
        }
        m.end()
    }
}

impl<'de> serde::Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        let m: std::collections::BTreeMap<String, String> = serde::Deserialize::deserialize(d)?;
        Ok(Labels::from_pairs(m))
    }
}

/// Which metric and label names are valid (`metric_name_validation_scheme`), as
/// Prometheus 3.16's `model.ValidationScheme`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ValidationScheme {
    /// `utf8` (the default): any non-empty UTF-8 name.
    #[default]
    Utf8,
    /// `legacy`: `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names, `[a-zA-Z_][a-zA-Z0-9_]*` for
    /// label names.
    Legacy,
}

impl ValidationScheme {
    /// The name written in a configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationScheme::Utf8 => "utf8",
            ValidationScheme::Legacy => "legacy",
        }
    }

    /// The scheme named `name`.
    pub fn from_name(name: &str) -> Option<ValidationScheme> {
        match name {
            "utf8" => Some(ValidationScheme::Utf8),
            "legacy" => Some(ValidationScheme::Legacy),
            _ => None,
        }
    }

    /// Whether `name` is a valid metric name under this scheme (a Rust `str` is always
    /// UTF-8, so under `utf8` only the empty name is invalid).
    pub fn is_valid_metric_name(self, name: &str) -> bool {
        match self {
            ValidationScheme::Utf8 => !name.is_empty(),
            ValidationScheme::Legacy => is_valid_metric_name(name),
        }
    }

    /// Whether `name` is a valid label name under this scheme.
    pub fn is_valid_label_name(self, name: &str) -> bool {
        match self {
            ValidationScheme::Utf8 => !name.is_empty(),
            ValidationScheme::Legacy => is_valid_label_name(name),
        }
    }
}

/// How a target is asked to escape names that are not legacy-valid
/// (`metric_name_escaping_scheme`, the `escaping` parameter of the `Accept` header), as
/// Prometheus 3.16's `model.EscapingScheme`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EscapingScheme {
    /// `allow-utf-8`: no escaping; only with the `utf8` validation scheme.
    #[default]
    AllowUtf8,
    /// `underscores`: every legacy-invalid character becomes `_`.
    Underscores,
    /// `dots`: like `underscores`, but `.` becomes `_dot_` and `_` becomes `__`.
    Dots,
    /// `values`: `U__` and each invalid character as `_<hex code point>_`.
    Values,
}

impl EscapingScheme {
    /// The scheme named `name` (as [`EscapingScheme::from_name`]).
    pub fn parse(name: &str) -> Option<EscapingScheme> {
        Self::from_name(name)
    }

    /// The name written in a configuration and in the `Accept` header.
    pub fn as_str(self) -> &'static str {
        match self {
            EscapingScheme::AllowUtf8 => "allow-utf-8",
            EscapingScheme::Underscores => "underscores",
            EscapingScheme::Dots => "dots",
            EscapingScheme::Values => "values",
        }
    }

    /// The scheme named `name`.
    pub fn from_name(name: &str) -> Option<EscapingScheme> {
        [
            EscapingScheme::AllowUtf8,
            EscapingScheme::Underscores,
            EscapingScheme::Dots,
            EscapingScheme::Values,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// The scheme a job uses when it names none: `allow-utf-8` under `utf8` validation,
    /// `underscores` under `legacy` (Prometheus's `config.ToEscapingScheme`).
    pub fn default_for(validation: ValidationScheme) -> EscapingScheme {
        match validation {
            ValidationScheme::Utf8 => EscapingScheme::AllowUtf8,
            ValidationScheme::Legacy => EscapingScheme::Underscores,
        }
    }
}

impl serde::Serialize for ValidationScheme {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl serde::Serialize for EscapingScheme {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b':'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_empty_means_absent() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        let utf8 = Labels::from_pairs([("__name__", "my.metric"), ("my.label", "x")]);
        assert_eq!(
            utf8.to_string(),
            r#"{__name__="my.metric", "my.label"="x"}"#
        );
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn canonical_encoding_separates_name_and_value() {
        let a = Labels::from_pairs([("ab", "c")]);
        let b = Labels::from_pairs([("a", "bc")]);
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        a.encode_canonical(&mut ea);
        b.encode_canonical(&mut eb);
        assert_ne!(ea, eb);
    }

    #[test]
    fn name_validity() {
        assert!(is_valid_label_name("_a1"));
        assert!(!is_valid_label_name("1a"));
        assert!(!is_valid_label_name("a:b"));
        assert!(is_valid_metric_name("a:b"));
        assert!(!is_valid_metric_name(""));
        assert!(ValidationScheme::Utf8.is_valid_metric_name("my.metric ünïcode"));
        assert!(ValidationScheme::Utf8.is_valid_label_name("a-b"));
        assert!(!ValidationScheme::Utf8.is_valid_label_name(""));
        assert!(!ValidationScheme::Legacy.is_valid_metric_name("my.metric"));
        assert!(!ValidationScheme::Legacy.is_valid_label_name("a:b"));
        assert!(ValidationScheme::Legacy.is_valid_metric_name("a:b"));
    }
}
