//! Relabeling: every Prometheus action, with Prometheus's defaults and results.
//!
//! OWNER: config helper.

use crate::labels::{is_valid_label_name, Labels};

/// A relabeling action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Write the expanded replacement into `target_label` when the regex matches.
    #[default]
    Replace,
    /// Drop the series/target unless the regex matches.
    Keep,
    /// Drop the series/target when the regex matches.
    Drop,
    /// `target_label` = md5 hash of the source values modulo `modulus`.
    Hashmod,
    /// Copy labels whose name matches to the expanded replacement name.
    Labelmap,
    /// Remove labels whose name matches.
    Labeldrop,
    /// Remove labels whose name does not match.
    Labelkeep,
    /// `target_label` = lowercased source values.
    Lowercase,
    /// `target_label` = uppercased source values.
    Uppercase,
    /// Keep only if the source values equal the value of `target_label`.
    Keepequal,
    /// Drop if the source values equal the value of `target_label`.
    Dropequal,
}

/// One relabeling step, validated, with its regex compiled fully anchored.
#[derive(Clone, Debug)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    pub source_labels: Vec<String>,
    /// Separator of the joined source values (`;`).
    pub separator: String,
    /// The regex as written (default `(.*)`).
    pub regex_source: String,
    /// The regex compiled as `^(?:<regex>)$`.
    pub regex: regex::Regex,
    /// Modulus for `hashmod`.
    pub modulus: u64,
    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase`.
    pub target_label: String,
    /// Replacement with `$1`, `${1}`, `${name}` references (default `$1`).
    pub replacement: String,
    /// The action.
    pub action: Action,
}

impl PartialEq for RelabelConfig {
    fn eq(&self, o: &Self) -> bool {
        self.source_labels == o.source_labels
            && self.separator == o.separator
            && self.regex_source == o.regex_source
            && self.modulus == o.modulus
            && self.target_label == o.target_label
            && self.replacement == o.replacement
            && self.action == o.action
    }
}

impl serde::Serialize for RelabelConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RelabelConfig", 7)?;
        st.serialize_field("source_labels", &self.source_labels)?;
        st.serialize_field("separator", &self.separator)?;
        st.serialize_field("regex", &self.regex_source)?;
        st.serialize_field("modulus", &self.modulus)?;
        st.serialize_field("target_label", &self.target_label)?;
        st.serialize_field("replacement", &self.replacement)?;
        st.serialize_field("action", &self.action)?;
        st.end()
    }
}

/// A relabel rule as written, before defaults and validation: `None` for an absent key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelabelSpec {
    /// `source_labels`.
    pub source_labels: Option<Vec<String>>,
    /// `separator`.
    pub separator: Option<String>,
    /// `regex`.
    pub regex: Option<String>,
    /// `modulus`.
    pub modulus: Option<u64>,
    /// `target_label`.
    pub target_label: Option<String>,
    /// `replacement`.
    pub replacement: Option<String>,
    /// `action`, any case.
    pub action: Option<String>,
}

/// Why a relabel rule is invalid, and which of its fields is at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelabelError {
    /// The field (`regex`, `target_label`, `action`, ...).
    pub field: &'static str,
    /// Prometheus's wording of the problem.
    pub message: String,
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

impl Action {
    /// Parses an action name, in any case, as Prometheus does.
    pub fn parse(name: &str) -> Option<Action> {
        Some(match name.to_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "hashmod" => Action::Hashmod,
            "labelmap" => Action::Labelmap,
            "labeldrop" => Action::Labeldrop,
            "labelkeep" => Action::Labelkeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            "keepequal" => Action::Keepequal,
            "dropequal" => Action::Dropequal,
            _ => return None,
        })
    }

    /// The action's name in Prometheus's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::Hashmod => "hashmod",
            Action::Labelmap => "labelmap",
            Action::Labeldrop => "labeldrop",
            Action::Labelkeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
            Action::Keepequal => "keepequal",
            Action::Dropequal => "dropequal",
        }
    }
}

/// Compiles `regex` fully anchored, as Prometheus's `relabel.NewRegexp`.
pub fn compile_anchored(regex: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{regex})$")).map_err(|e| {
        // The regex crate's message spans lines (pattern, caret, reason): keep the reason.
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string();
        format!("invalid regex {regex:?}: {reason}")
    })
}

/// Whether `s` is a `target_label` template Prometheus accepts for `replace` and a
/// `replacement` it accepts for `labelmap`: `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`.
fn is_valid_label_template(s: &str) -> bool {
    // Every piece starts with a letter, `_`, `$name` or `${name}`; word characters may
    // follow anything. So: the first character must start a piece, and every `$` must
    // be followed by a name (braced or not); everything else must be a word character.
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if !(b[0].is_ascii_alphabetic() || b[0] == b'_' || b[0] == b'$') {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            i += 1;
            if i < b.len() && b[i] == b'{' {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && is_word(b[j]) {
                    j += 1;
                }
                if j == start || j >= b.len() || b[j] != b'}' {
                    return false;
                }
                i = j + 1;
            } else {
                let start = i;
                while i < b.len() && is_word(b[i]) {
                    i += 1;
                }
                if i == start {
                    return false;
                }
            }
        } else if is_word(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

impl RelabelConfig {
    /// Applies Prometheus's defaults to a rule as written and validates it exactly as
    /// Prometheus's `relabel.Config.Validate` does.
    pub fn from_spec(spec: RelabelSpec) -> Result<RelabelConfig, RelabelError> {
        let err = |field: &'static str, message: String| Err(RelabelError { field, message });
        let action = match spec.action.as_deref() {
            None => Action::Replace,
            Some("") => return err("action", "relabel action cannot be empty".into()),
            Some(name) => match Action::parse(name) {
                Some(a) => a,
                None => return err("action", format!("unknown relabel action {name:?}")),
            },
        };
        let regex_source = spec
            .regex
            .clone()
            .unwrap_or_else(|| DEFAULT_REGEX.to_string());
        let regex = match compile_anchored(&regex_source) {
            Ok(r) => r,
            Err(e) => return err("regex", e),
        };
        let separator = spec
            .separator
            .clone()
            .unwrap_or_else(|| DEFAULT_SEPARATOR.to_string());
        let replacement = spec
            .replacement
            .clone()
            .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string());
        let target_label = spec.target_label.clone().unwrap_or_default();
        let modulus = spec.modulus.unwrap_or(0);
        let a = action.as_str();
        if modulus == 0 && action == Action::Hashmod {
            return err(
                "modulus",
                "relabel configuration for hashmod requires non-zero modulus".into(),
            );
        }
        let needs_target = matches!(
            action,
            Action::Replace
                | Action::Hashmod
                | Action::Lowercase
                | Action::Uppercase
                | Action::Keepequal
                | Action::Dropequal
        );
        if needs_target && target_label.is_empty() {
            return err(
                "target_label",
                format!("relabel configuration for {a} action requires 'target_label' value"),
            );
        }
        let invalid_target =
            || format!("{target_label:?} is invalid 'target_label' for {a} action");
        if action == Action::Replace
            && !target_label.contains('$')
            && !is_valid_label_name(&target_label)
        {
            return err("target_label", invalid_target());
        }
        if action == Action::Replace
            && target_label.contains('$')
            && !is_valid_label_template(&target_label)
        {
            return err("target_label", invalid_target());
        }
        let equal_or_case = matches!(
            action,
            Action::Lowercase | Action::Uppercase | Action::Keepequal | Action::Dropequal
        );
        if equal_or_case && !is_valid_label_name(&target_label) {
            return err("target_label", invalid_target());
        }
        if equal_or_case && replacement != DEFAULT_REPLACEMENT {
            return err(
                "replacement",
                format!("'replacement' can not be set for {a} action"),
            );
        }
        if action == Action::Labelmap && !is_valid_label_template(&replacement) {
            return err(
                "replacement",
                format!("{replacement:?} is invalid 'replacement' for {a} action"),
            );
        }
        if action == Action::Hashmod && !is_valid_label_name(&target_label) {
            return err("target_label", invalid_target());
        }
        if matches!(action, Action::Keepequal | Action::Dropequal) {
            // Prometheus compares the regex by identity: any regex written counts as set.
            let (field, set) = [
                ("regex", spec.regex.is_some()),
                ("modulus", modulus != 0),
                ("separator", separator != DEFAULT_SEPARATOR),
                ("replacement", replacement != DEFAULT_REPLACEMENT),
            ]
            .into_iter()
            .find(|(_, set)| *set)
            .unwrap_or(("", false));
            if set {
                return err(field, format!("{a} action requires only 'source_labels' and `target_label`, and no other fields"));
            }
        }
        if matches!(action, Action::Labeldrop | Action::Labelkeep) {
            let (field, set) = [
                ("source_labels", spec.source_labels.is_some()),
                ("target_label", !target_label.is_empty()),
                ("modulus", modulus != 0),
                ("separator", separator != DEFAULT_SEPARATOR),
                ("replacement", replacement != DEFAULT_REPLACEMENT),
            ]
            .into_iter()
            .find(|(_, set)| *set)
            .unwrap_or(("", false));
            if set {
                return err(
                    field,
                    format!("{a} action requires only 'regex', and no other fields"),
                );
            }
        }
        Ok(RelabelConfig {
            source_labels: spec.source_labels.unwrap_or_default(),
            separator,
            regex_source,
            regex,
            modulus,
            target_label,
            replacement,
            action,
        })
    }
}

/// Applies `configs` in order; `None` when a step drops the label set.
pub fn process(configs: &[RelabelConfig], mut labels: Labels) -> Option<Labels> {
    for config in configs {
        if !relabel(config, &mut labels) {
            return None;
        }
    }
    Some(labels)
}

/// One step; false when the label set is dropped.
fn relabel(cfg: &RelabelConfig, labels: &mut Labels) -> bool {
    let mut value = String::new();
    for (i, name) in cfg.source_labels.iter().enumerate() {
        if i > 0 {
            value.push_str(&cfg.separator);
        }
        value.push_str(labels.get(name).unwrap_or(""));
    }
    match cfg.action {
        Action::Drop => return !cfg.regex.is_match(&value),
        Action::Keep => return cfg.regex.is_match(&value),
        Action::Dropequal => return labels.get(&cfg.target_label).unwrap_or("") != value,
        Action::Keepequal => return labels.get(&cfg.target_label).unwrap_or("") == value,
        Action::Replace => {
            let Some(caps) = cfg.regex.captures(&value) else {
                return true;
            };
            let target = expand(&cfg.regex, &caps, &cfg.target_label);
            // An expanded name that is not a label name writes nothing (Prometheus).
            if !is_valid_label_name(&target) {
                return true;
            }
            let replacement = expand(&cfg.regex, &caps, &cfg.replacement);
            // `set` with an empty value deletes the label, as Prometheus does.
            labels.set(target, replacement);
        }
        Action::Lowercase => labels.set(cfg.target_label.clone(), value.to_lowercase()),
        Action::Uppercase => labels.set(cfg.target_label.clone(), value.to_uppercase()),
        Action::Hashmod => {
            let shard = hashmod(&value, cfg.modulus);
            labels.set(cfg.target_label.clone(), shard.to_string());
        }
        Action::Labelmap => {
            // Every label present before the step, in name order; later names win a clash.
            let snapshot: Vec<(String, String)> = labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for (name, value) in snapshot {
                if let Some(caps) = cfg.regex.captures(&name) {
                    let new_name = expand(&cfg.regex, &caps, &cfg.replacement);
                    labels.set(new_name, value);
                }
            }
        }
        Action::Labeldrop => labels.retain(|l| !cfg.regex.is_match(&l.name)),
        Action::Labelkeep => labels.retain(|l| cfg.regex.is_match(&l.name)),
    }
    true
}

/// `hashmod`: md5 of `value`, its last 8 bytes as a big-endian integer, modulo `modulus`.
pub fn hashmod(value: &str, modulus: u64) -> u64 {
    let digest = md5::compute(value.as_bytes());
    let mut tail = [0u8; 8];
    tail.copy_from_slice(&digest.0[8..16]);
    u64::from_be_bytes(tail) % modulus
}

/// Expands `$1`, `${1}`, `$name`, `${name}` and `$$` in `template` exactly as Go's
/// `regexp.Expand`: a bare name takes the longest run of letters, digits and `_` (so `$1x`
/// names the group `1x`); an unknown or unmatched group gives the empty string; a `$` not
/// followed by a valid reference is kept as it is.
pub fn expand(regex: &regex::Regex, caps: &regex::Captures<'_>, template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let Some((name, after)) = extract_reference(rest) else {
            // Malformed: the `$` is literal text.
            out.push('$');
            continue;
        };
        rest = after;
        match group_number(name) {
            Some(n) => {
                if let Some(m) = caps.get(n) {
                    out.push_str(m.as_str());
                }
            }
            None => {
                if let Some(index) = regex.capture_names().position(|n| n == Some(name)) {
                    if let Some(m) = caps.get(index) {
                        out.push_str(m.as_str());
                    }
                }
            }
        }
    }
    out.push_str(rest);
    out
}

/// After a `$`: the reference's name and what follows it (Go's `extract`).
fn extract_reference(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len: usize = body
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    let mut after = &body[len..];
    if braced {
        after = after.strip_prefix('}')?;
    }
    Some((name, after))
}

/// A group number as Go reads one: ASCII digits, no leading zero, below 10^8.
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit())
        || (name.len() > 1 && name.starts_with('0'))
        || name.len() > 8
    {
        return None;
    }
    name.parse().ok()
}
