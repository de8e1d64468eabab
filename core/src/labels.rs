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
    /// Prometheus's notation: `{a="1", b="2"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={:?}", l.name, l.value)?;
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
    }
}
