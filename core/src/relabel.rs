//! Relabeling: every Prometheus action, with Prometheus's defaults and results.
//!
//! The actions are one table, `ACTIONS`: each row names an action as Prometheus spells it
//! and says what it asks of the rest of its rule. One `match`, in the private step
//! `relabel`, applies them.

use std::fmt;

use crate::labels::{Labels, ValidationScheme};

/// A relabeling action. Its name and what it asks of its rule are its row in `ACTIONS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
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

/// What an action asks of the rest of its rule. [`Requires::check`] checks it in the order
/// of Prometheus's `relabel.Config.Validate`, so the first fault reported is Prometheus's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Requires {
    /// `modulus` must be non-zero.
    modulus: bool,
    /// What `target_label` must be.
    target_label: TargetLabelRule,
    /// What `replacement` may be.
    replacement: ReplacementRule,
    /// The only fields the rule may set besides `action`; `None`: no restriction.
    only: Option<OnlyFields>,
}

/// What an action asks of `target_label`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TargetLabelRule {
    /// Not read by the action.
    Ignored,
    /// Required, and a valid label name.
    Name,
    /// Required, and a valid label name or, when it holds a `$`, a template of one.
    NameOrTemplate,
}

/// What an action asks of `replacement`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplacementRule {
    /// Anything.
    Any,
    /// Must stay the default `$1`.
    Default,
    /// A template of a label name.
    Template,
}

/// The fields a restricted action allows besides `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnlyFields {
    /// `source_labels` and `target_label`.
    SourceLabelsAndTargetLabel,
    /// `regex`.
    Regex,
}

/// An action that asks nothing of the rest of its rule.
const ANY: Requires = Requires {
    modulus: false,
    target_label: TargetLabelRule::Ignored,
    replacement: ReplacementRule::Any,
    only: None,
};

/// `lowercase` and `uppercase`.
const CASE: Requires = Requires {
    target_label: TargetLabelRule::Name,
    replacement: ReplacementRule::Default,
    ..ANY
};

/// `keepequal` and `dropequal`.
const EQUAL: Requires = Requires {
    only: Some(OnlyFields::SourceLabelsAndTargetLabel),
    ..CASE
};

/// `labeldrop` and `labelkeep`.
const ONLY_REGEX: Requires = Requires {
    only: Some(OnlyFields::Regex),
    ..ANY
};

/// Every action: its name in Prometheus's configuration and what it asks of its rule.
/// Row `i` is the action whose discriminant is `i` (checked when compiling).
const ACTIONS: [(&str, Action, Requires); 11] = [
    (
        "replace",
        Action::Replace,
        Requires {
            target_label: TargetLabelRule::NameOrTemplate,
            ..ANY
        },
    ),
    ("keep", Action::Keep, ANY),
    ("drop", Action::Drop, ANY),
    (
        "hashmod",
        Action::Hashmod,
        Requires {
            modulus: true,
            target_label: TargetLabelRule::Name,
            ..ANY
        },
    ),
    (
        "labelmap",
        Action::Labelmap,
        Requires {
            replacement: ReplacementRule::Template,
            ..ANY
        },
    ),
    ("labeldrop", Action::Labeldrop, ONLY_REGEX),
    ("labelkeep", Action::Labelkeep, ONLY_REGEX),
    ("lowercase", Action::Lowercase, CASE),
    ("uppercase", Action::Uppercase, CASE),
    ("keepequal", Action::Keepequal, EQUAL),
    ("dropequal", Action::Dropequal, EQUAL),
];

const _: () = {
    let mut i = 0;
    while i < ACTIONS.len() {
        assert!(ACTIONS[i].1 as usize == i, "ACTIONS is in variant order");
        i += 1;
    }
};

/// One relabeling step, validated, with its regex compiled fully anchored.
#[derive(Clone, Debug)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    pub source_labels: Vec<String>,
    /// Separator of the joined source values (`;`).
    pub separator: String,
    /// The regex as written (default `(.*)`).
    pub regex_source: String,
    /// The regex compiled as `^(?s:<regex>)$` (`.` matches a newline, as in Prometheus 3).
    pub regex: regex::Regex,
    /// Modulus for `hashmod`.
    pub modulus: u64,
    /// Label written by `replace`, `hashmod`, `lowercase`, `uppercase`.
    pub target_label: String,
    /// Replacement with `$1`, `${1}`, `${name}` references (default `$1`).
    pub replacement: String,
    /// The action.
    pub action: Action,
    /// Which `target_label`s (and `labelmap` replacements) are label names: the job's
    /// `metric_name_validation_scheme` (Prometheus's `relabel.Config.NameValidationScheme`).
    pub name_validation_scheme: ValidationScheme,
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
            && self.name_validation_scheme == o.name_validation_scheme
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
    /// The job's `metric_name_validation_scheme` is `legacy`: target labels and `labelmap`
    /// replacements must be legacy label names. Otherwise (Prometheus 3's `utf8`) any
    /// non-empty name is one.
    pub legacy_names: bool,
}

/// Why a relabel rule is invalid. `Display` is Prometheus's (and promtool's) wording;
/// [`RelabelError::field`] names the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    /// `action: ""`.
    #[error("relabel action cannot be empty")]
    EmptyAction,
    /// An action Prometheus does not have.
    #[error("unknown relabel action {0:?}")]
    UnknownAction(String),
    /// The regex does not compile.
    #[error("invalid regex {regex:?}: {reason}")]
    InvalidRegex {
        /// The regex as written.
        regex: String,
        /// Why it does not compile.
        reason: String,
    },
    /// `modulus` is 0 (or absent) for an action that needs one.
    #[error("relabel configuration for {action} requires non-zero modulus")]
    ZeroModulus {
        /// The action.
        action: Action,
    },
    /// `target_label` is empty for an action that writes or reads it.
    #[error("relabel configuration for {action} action requires 'target_label' value")]
    MissingTargetLabel {
        /// The action.
        action: Action,
    },
    /// `target_label` is not what the action accepts.
    #[error("{target_label:?} is invalid 'target_label' for {action} action")]
    InvalidTargetLabel {
        /// The action.
        action: Action,
        /// The label as written.
        target_label: String,
    },
    /// `replacement` is set for an action that allows only the default.
    #[error("'replacement' can not be set for {action} action")]
    ReplacementSet {
        /// The action.
        action: Action,
    },
    /// `replacement` is not a label name template.
    #[error("{replacement:?} is invalid 'replacement' for {action} action")]
    InvalidReplacement {
        /// The action.
        action: Action,
        /// The replacement as written.
        replacement: String,
    },
    /// A field is set that the action does not allow.
    #[error("{action} action requires only {}, and no other fields", only.describe())]
    FieldNotAllowed {
        /// The action.
        action: Action,
        /// The fields it allows.
        only: OnlyFields,
        /// The first field set that it does not allow.
        field: &'static str,
    },
}

impl RelabelError {
    /// The field at fault (`action`, `regex`, `target_label`, ...).
    pub fn field(&self) -> &'static str {
        match self {
            RelabelError::EmptyAction | RelabelError::UnknownAction(_) => "action",
            RelabelError::InvalidRegex { .. } => "regex",
            RelabelError::ZeroModulus { .. } => "modulus",
            RelabelError::MissingTargetLabel { .. } | RelabelError::InvalidTargetLabel { .. } => {
                "target_label"
            }
            RelabelError::ReplacementSet { .. } | RelabelError::InvalidReplacement { .. } => {
                "replacement"
            }
            RelabelError::FieldNotAllowed { field, .. } => field,
        }
    }
}

const DEFAULT_SEPARATOR: &str = ";";
const DEFAULT_REGEX: &str = "(.*)";
const DEFAULT_REPLACEMENT: &str = "$1";

impl Action {
    /// Parses an action name, in any case, as Prometheus does.
    pub fn parse(name: &str) -> Option<Action> {
        let name = name.to_lowercase();
        ACTIONS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, action, _)| action)
    }

    /// The action's name in Prometheus's configuration.
    pub fn as_str(self) -> &'static str {
        ACTIONS[self as usize].0
    }

    /// What the action asks of the rest of its rule.
    fn requires(self) -> Requires {
        ACTIONS[self as usize].2
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl OnlyFields {
    /// The allowed fields in Prometheus's wording (its quotes, mismatched as they are).
    fn describe(self) -> &'static str {
        match self {
            OnlyFields::SourceLabelsAndTargetLabel => "'source_labels' and `target_label`",
            OnlyFields::Regex => "'regex'",
        }
    }

    /// The first field of `rule` set that is not allowed, in Prometheus's order.
    fn first_extra(self, rule: &RelabelConfig, spec: &RelabelSpec) -> Option<&'static str> {
        let common = [
            ("modulus", rule.modulus != 0),
            ("separator", rule.separator != DEFAULT_SEPARATOR),
            ("replacement", rule.replacement != DEFAULT_REPLACEMENT),
        ];
        let own = match self {
            // Prometheus compares the regex by identity: any regex written counts as set.
            OnlyFields::SourceLabelsAndTargetLabel => vec![("regex", spec.regex.is_some())],
            OnlyFields::Regex => vec![
                ("source_labels", spec.source_labels.is_some()),
                ("target_label", !rule.target_label.is_empty()),
            ],
        };
        own.into_iter()
            .chain(common)
            .find(|&(_, set)| set)
            .map(|(field, _)| field)
    }
}

impl Requires {
    /// `target_label` is a label name (or a template of one) under the rule's scheme.
    fn check_target_label(self, action: Action, rule: &RelabelConfig) -> Result<(), RelabelError> {
        let target = &rule.target_label;
        let scheme = rule.name_validation_scheme;
        let valid = match self.target_label {
            TargetLabelRule::Ignored => true,
            TargetLabelRule::NameOrTemplate
                if target.contains('$') && scheme == ValidationScheme::Legacy =>
            {
                is_valid_label_template(target)
            }
            TargetLabelRule::Name | TargetLabelRule::NameOrTemplate => {
                scheme.is_valid_label_name(target)
            }
        };
        if valid {
            return Ok(());
        }
        Err(RelabelError::InvalidTargetLabel {
            action,
            target_label: target.clone(),
        })
    }

    /// A `labelmap` replacement is a label name template under the rule's scheme (under
    /// `utf8`, any non-empty text, as Prometheus's `isValidLabelNameWithRegexVarFn`).
    fn check_replacement(self, action: Action, rule: &RelabelConfig) -> Result<(), RelabelError> {
        let replacement = &rule.replacement;
        let valid = match rule.name_validation_scheme {
            ValidationScheme::Utf8 => !replacement.is_empty(),
            ValidationScheme::Legacy => is_valid_label_template(replacement),
        };
        if valid || self.replacement != ReplacementRule::Template {
            return Ok(());
        }
        Err(RelabelError::InvalidReplacement {
            action,
            replacement: replacement.clone(),
        })
    }

    /// Checks `rule` (and, for the fields whose mere presence counts, `spec`, the rule as
    /// written) against what `action` requires.
    fn check(
        self,
        action: Action,
        rule: &RelabelConfig,
        spec: &RelabelSpec,
    ) -> Result<(), RelabelError> {
        if self.modulus && rule.modulus == 0 {
            return Err(RelabelError::ZeroModulus { action });
        }
        if self.target_label != TargetLabelRule::Ignored && rule.target_label.is_empty() {
            return Err(RelabelError::MissingTargetLabel { action });
        }
        self.check_target_label(action, rule)?;
        match self.replacement {
            ReplacementRule::Default if rule.replacement != DEFAULT_REPLACEMENT => {
                return Err(RelabelError::ReplacementSet { action });
            }
            ReplacementRule::Template => self.check_replacement(action, rule)?,
            _ => {}
        }
        if let Some(only) = self.only {
            if let Some(field) = only.first_extra(rule, spec) {
                return Err(RelabelError::FieldNotAllowed {
                    action,
                    only,
                    field,
                });
            }
        }
        Ok(())
    }
}

/// Go's `strings.ToUpper`: each character by its simple (one-to-one) uppercase mapping,
/// `unicode.ToUpper`. Rust's `to_uppercase` is the full mapping (`ß` → `SS`); where that
/// gives several characters, the simple mapping keeps the character, except for the Greek
/// letters with iota subscript, whose simple uppercase is their titlecase form (`ᾳ` → `ᾼ`).
pub fn go_to_upper(s: &str) -> String {
    s.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => match c as u32 {
                    0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => {
                        char::from_u32(c as u32 + 8).unwrap_or(c)
                    }
                    0x1FB3 | 0x1FC3 | 0x1FF3 => char::from_u32(c as u32 + 9).unwrap_or(c),
                    _ => c,
                },
            }
        })
        .collect()
}

/// Go's `strings.ToLower`: each character by its simple (one-to-one) lowercase mapping,
/// `unicode.ToLower`. The only full lowercase mapping of several characters is `İ` → `i̇`,
/// whose simple mapping is `i`; per character, so a final `Σ` is `σ` (Rust's `str`
/// method writes `ς`).
pub fn go_to_lower(s: &str) -> String {
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Compiles `regex` fully anchored, as Prometheus 3's `relabel.NewRegexp`: `^(?s:<regex>)$`,
/// so `.` matches a newline too.
///
/// Go's RE2 reads `\d`, `\w`, `\s` and `\b` as ASCII classes where the `regex` crate reads
/// them as Unicode ones; they are rewritten to their ASCII forms first so that a label value
/// such as `١٢` (Arabic-Indic digits) matches `\d+` in neither.
pub fn compile_anchored(regex: &str) -> Result<regex::Regex, RelabelError> {
    let translated = ascii_perl_classes(regex);
    regex::Regex::new(&format!("^(?s:{translated})$")).map_err(|e| {
        // The regex crate's message spans lines (pattern, caret, reason): keep the reason.
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string();
        RelabelError::InvalidRegex {
            regex: regex.to_string(),
            reason,
        }
    })
}

/// Rewrites the Perl classes `\d \D \w \W \s \S \b \B` to the ASCII meaning they have in Go.
/// Negated classes inside a bracket (`[\D]`) are left as they are: rare, and without a
/// short ASCII spelling there.
fn ascii_perl_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    // Just after `[` or `[^`, where a `]` is a literal.
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let at_class_start = std::mem::take(&mut class_start);
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    out.push(c);
                    break;
                };
                let replacement = match (in_class, next) {
                    (false, 'd') => Some("[0-9]"),
                    (false, 'D') => Some("[^0-9]"),
                    (false, 'w') => Some("[0-9A-Za-z_]"),
                    (false, 'W') => Some("[^0-9A-Za-z_]"),
                    (false, 's') => Some("[\\t\\n\\f\\r ]"),
                    (false, 'S') => Some("[^\\t\\n\\f\\r ]"),
                    (false, 'b') => Some("(?-u:\\b)"),
                    (false, 'B') => Some("(?-u:\\B)"),
                    (true, 'd') => Some("0-9"),
                    (true, 'w') => Some("0-9A-Za-z_"),
                    (true, 's') => Some("\\t\\n\\f\\r "),
                    _ => None,
                };
                match replacement {
                    Some(r) => out.push_str(r),
                    None => {
                        out.push(c);
                        out.push(next);
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                class_start = true;
                out.push(c);
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            '[' if in_class && chars.peek() == Some(&':') => {
                // A POSIX class `[:alpha:]` inside a bracket: copy it whole.
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == ']' {
                        break;
                    }
                }
            }
            ']' if in_class && !at_class_start => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
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
        let action = match spec.action.as_deref() {
            None => Action::Replace,
            // Prometheus 3.16 reads the action before validating it: an empty one is unknown.
            Some("") => return Err(RelabelError::UnknownAction(String::new())),
            Some(name) => {
                Action::parse(name).ok_or_else(|| RelabelError::UnknownAction(name.to_string()))?
            }
        };
        let regex_source = spec
            .regex
            .clone()
            .unwrap_or_else(|| DEFAULT_REGEX.to_string());
        let regex = compile_anchored(&regex_source)?;
        let rule = RelabelConfig {
            source_labels: spec.source_labels.clone().unwrap_or_default(),
            separator: spec
                .separator
                .clone()
                .unwrap_or_else(|| DEFAULT_SEPARATOR.to_string()),
            regex_source,
            regex,
            modulus: spec.modulus.unwrap_or(0),
            target_label: spec.target_label.clone().unwrap_or_default(),
            replacement: spec
                .replacement
                .clone()
                .unwrap_or_else(|| DEFAULT_REPLACEMENT.to_string()),
            action,
            name_validation_scheme: if spec.legacy_names {
                ValidationScheme::Legacy
            } else {
                ValidationScheme::Utf8
            },
        };
        action.requires().check(action, &rule, &spec)?;
        Ok(rule)
    }

    /// The rule under `scheme` (its job's `metric_name_validation_scheme`); an error when
    /// its `target_label` or `labelmap` replacement is no label name under it. Every other
    /// check of [`RelabelConfig::from_spec`] is independent of the scheme.
    pub fn with_validation_scheme(
        mut self,
        scheme: ValidationScheme,
    ) -> Result<RelabelConfig, RelabelError> {
        self.name_validation_scheme = scheme;
        let requires = self.action.requires();
        requires.check_target_label(self.action, &self)?;
        requires.check_replacement(self.action, &self)?;
        Ok(self)
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
            if !cfg.name_validation_scheme.is_valid_label_name(&target) {
                return true;
            }
            let replacement = expand(&cfg.regex, &caps, &cfg.replacement);
            // `set` with an empty value deletes the label, as Prometheus does.
            labels.set(target, replacement);
        }
        Action::Lowercase => labels.set(cfg.target_label.clone(), go_to_lower(&value)),
        Action::Uppercase => labels.set(cfg.target_label.clone(), go_to_upper(&value)),
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

#[cfg(test)]
mod tests {
    //! Table tests written from Prometheus's documentation of `relabel_config` and the
    //! behaviour of its `model/relabel` package.
    use super::*;

    fn rule(yaml: &[(&str, &str)]) -> RelabelConfig {
        try_rule(yaml).unwrap_or_else(|e| panic!("rule {yaml:?} rejected: {e:?}"))
    }

    /// A rule under the `legacy` name validation scheme; `("utf8", "")` asks for `utf8`.
    fn try_rule(yaml: &[(&str, &str)]) -> Result<RelabelConfig, RelabelError> {
        let mut spec = RelabelSpec {
            legacy_names: true,
            ..Default::default()
        };
        for (k, v) in yaml {
            let v = v.to_string();
            match *k {
                "source_labels" => {
                    spec.source_labels = Some(
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect(),
                    )
                }
                "separator" => spec.separator = Some(v),
                "regex" => spec.regex = Some(v),
                "modulus" => spec.modulus = Some(v.parse().unwrap()),
                "target_label" => spec.target_label = Some(v),
                "replacement" => spec.replacement = Some(v),
                "action" => spec.action = Some(v),
                "utf8" => spec.legacy_names = false,
                other => panic!("unknown key {other}"),
            }
        }
        // Legacy name rules unless the pairs say `utf8` (the tables below were written for
        // the legacy rules).
        RelabelConfig::from_spec(spec)
    }

    fn utf8_rule(yaml: &[(&str, &str)]) -> Result<RelabelConfig, RelabelError> {
        let rule = from_yaml_pairs(yaml)?;
        assert_eq!(rule.name_validation_scheme, ValidationScheme::Utf8);
        Ok(rule)
    }

    /// The rule as `from_spec` reads it (the `utf8` scheme).
    fn from_yaml_pairs(yaml: &[(&str, &str)]) -> Result<RelabelConfig, RelabelError> {
        let mut spec = RelabelSpec::default();
        for (k, v) in yaml {
            let v = Some(v.to_string());
            match *k {
                "source_labels" => {
                    spec.source_labels = v.map(|v| v.split(',').map(str::to_string).collect())
                }
                "regex" => spec.regex = v,
                "modulus" => spec.modulus = v.map(|v| v.parse().unwrap()),
                "target_label" => spec.target_label = v,
                "replacement" => spec.replacement = v,
                "action" => spec.action = v,
                other => panic!("unknown key {other}"),
            }
        }
        RelabelConfig::from_spec(spec)
    }

    #[test]
    fn utf8_names() {
        // Under the default scheme any non-empty name is a label name (Prometheus 3.16).
        for yaml in [
            &[("source_labels", "a"), ("target_label", "my.label")][..],
            &[("source_labels", "a"), ("target_label", "a-$1")],
            &[
                ("source_labels", "a"),
                ("modulus", "2"),
                ("target_label", "$1"),
                ("action", "hashmod"),
            ],
            &[
                ("regex", "(.*)"),
                ("replacement", "a-b"),
                ("action", "labelmap"),
            ],
        ] {
            assert!(utf8_rule(yaml).is_ok(), "{yaml:?}");
            assert!(try_rule(yaml).is_err(), "legacy refuses {yaml:?}");
        }
        // An expanded target that is no legacy name is written under utf8.
        let rule = utf8_rule(&[
            ("source_labels", "a"),
            ("regex", "(.*)"),
            ("target_label", "$1"),
            ("replacement", "v"),
        ])
        .unwrap();
        assert_eq!(
            run(&[rule], &[("a", "1.bad")]),
            Some(labels(&[("a", "1.bad"), ("1.bad", "v")]))
        );
        let rule = rule_legacy_template();
        assert_eq!(
            run(&[rule], &[("a", "1.bad")]),
            Some(labels(&[("a", "1.bad")]))
        );
    }

    fn rule_legacy_template() -> RelabelConfig {
        rule(&[
            ("source_labels", "a"),
            ("regex", "(.*)"),
            ("target_label", "$1"),
            ("replacement", "v"),
        ])
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn run(rules: &[RelabelConfig], input: &[(&str, &str)]) -> Option<Labels> {
        process(rules, labels(input))
    }

    #[test]
    fn defaults_are_prometheus_defaults() {
        let r = rule(&[("target_label", "t")]);
        assert_eq!(r.separator, ";");
        assert_eq!(r.regex_source, "(.*)");
        assert_eq!(r.replacement, "$1");
        assert_eq!(r.action, Action::Replace);
        assert_eq!(r.modulus, 0);
        assert!(r.source_labels.is_empty());
    }

    #[test]
    fn replace_table() {
        // (rule, input, expected output)
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
            &'static [(&'static str, &'static str)],
        );
        let cases: &[Case] = &[
            // The example of Prometheus's tests: `${1}` expanded twice.
            (
                &[
                    ("source_labels", "a"),
                    ("regex", "f(.*)"),
                    ("target_label", "d"),
                    ("replacement", "ch${1}-ch${1}"),
                ],
                &[("a", "foo")],
                &[("a", "foo"), ("d", "choo-choo")],
            ),
            // No match: nothing changes.
            (
                &[
                    ("source_labels", "a"),
                    ("regex", "x(.*)"),
                    ("target_label", "d"),
                ],
                &[("a", "foo")],
                &[("a", "foo")],
            ),
            // Fully anchored: `o` does not match inside `foo`.
            (
                &[
                    ("source_labels", "a"),
                    ("regex", "o"),
                    ("target_label", "d"),
                    ("replacement", "hit"),
                ],
                &[("a", "foo")],
                &[("a", "foo")],
            ),
            // Source values joined by the separator; a missing label is the empty string.
            (
                &[("source_labels", "a,b,c"), ("target_label", "d")],
                &[("a", "x"), ("c", "z")],
                &[("a", "x"), ("c", "z"), ("d", "x;;z")],
            ),
            (
                &[
                    ("source_labels", "a,c"),
                    ("separator", "-"),
                    ("target_label", "d"),
                ],
                &[("a", "x"), ("c", "z")],
                &[("a", "x"), ("c", "z"), ("d", "x-z")],
            ),
            // An empty replacement deletes the target label.
            (
                &[
                    ("source_labels", "a"),
                    ("regex", "foo"),
                    ("target_label", "b"),
                    ("replacement", ""),
                ],
                &[("a", "foo"), ("b", "bar")],
                &[("a", "foo")],
            ),
            // Default regex matches an empty value too: writes the replacement.
            (
                &[("target_label", "b"), ("replacement", "static")],
                &[("a", "foo")],
                &[("a", "foo"), ("b", "static")],
            ),
            // Target label as a template.
            (
                &[
                    ("source_labels", "a"),
                    ("regex", "(.*)=(.*)"),
                    ("target_label", "${1}"),
                    ("replacement", "$2"),
                ],
                &[("a", "env=prod")],
                &[("a", "env=prod"), ("env", "prod")],
            ),
            // Expanded target label not a valid name: nothing written.
            (
                &[
                    ("source_labels", "a"),
                    ("regex", "(.*)"),
                    ("target_label", "$1"),
                    ("replacement", "v"),
                ],
                &[("a", "1bad")],
                &[("a", "1bad")],
            ),
            // Named groups.
            (
                &[
                    ("source_labels", "a"),
                    ("regex", "(?P<host>[^:]+):(?P<port>\\d+)"),
                    ("target_label", "h"),
                    ("replacement", "${port}/${host}"),
                ],
                &[("a", "node:9100")],
                &[("a", "node:9100"), ("h", "9100/node")],
            ),
            // `$1x` is the group named `1x`: unknown, so empty, so the label is deleted.
            (
                &[
                    ("source_labels", "a"),
                    ("target_label", "b"),
                    ("replacement", "$1x"),
                ],
                &[("a", "foo"), ("b", "old")],
                &[("a", "foo")],
            ),
            (
                &[
                    ("source_labels", "a"),
                    ("target_label", "b"),
                    ("replacement", "${1}x"),
                ],
                &[("a", "foo")],
                &[("a", "foo"), ("b", "foox")],
            ),
        ];
        for (i, (r, input, want)) in cases.iter().enumerate() {
            let got = run(&[rule(r)], input);
            assert_eq!(got, Some(labels(want)), "case {i}: {r:?}");
        }
    }

    #[test]
    fn expansion_follows_go_regexp_expand() {
        let re = compile_anchored("(?P<first>a)(b)?(c)").unwrap();
        let caps = re.captures("ac").unwrap();
        let cases = [
            ("$1", "a"),
            ("${1}", "a"),
            ("${first}", "a"),
            ("$first", "a"),
            ("$firstx", ""), // longest name `firstx`: unknown group
            ("$2", ""),      // group that did not take part
            ("$3", "c"),
            ("$9", ""),     // group that does not exist
            ("$$1", "$1"),  // `$$` is a literal `$`
            ("x$", "x$"),   // a `$` with no name is literal
            ("${1", "${1"), // unclosed brace: literal
            ("$-", "$-"),
            ("$01", ""), // leading zero: a name, not a number, and no such group
            ("${3}${1}", "ca"),
        ];
        for (template, want) in cases {
            assert_eq!(expand(&re, &caps, template), want, "template {template:?}");
        }
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        let digits = compile_anchored("\\d+").unwrap();
        assert!(digits.is_match("0123456789"));
        assert!(!digits.is_match("١٢"));
        let word = compile_anchored("\\w+").unwrap();
        assert!(word.is_match("a_Z9"));
        assert!(!word.is_match("é"));
        let class = compile_anchored("[\\d.]+").unwrap();
        assert!(class.is_match("1.5"));
        assert!(!class.is_match("١"));
        let space = compile_anchored("a\\sb").unwrap();
        assert!(space.is_match("a b") && !space.is_match("a\u{a0}b"));
        assert!(compile_anchored("[]a]+").unwrap().is_match("]a"));
        assert!(compile_anchored("[[:alpha:]\\d]+").unwrap().is_match("a1"));
        assert!(compile_anchored("\\bfoo\\b.*").unwrap().is_match("foo bar"));
        // Escapes other than the Perl classes pass through.
        assert!(compile_anchored("a\\.b").unwrap().is_match("a.b"));
        assert!(!compile_anchored("a\\.b").unwrap().is_match("axb"));
    }

    #[test]
    fn keep_and_drop() {
        let keep = rule(&[
            ("source_labels", "env"),
            ("regex", "prod|staging"),
            ("action", "keep"),
        ]);
        let drop = rule(&[
            ("source_labels", "env"),
            ("regex", "prod|staging"),
            ("action", "drop"),
        ]);
        assert!(run(std::slice::from_ref(&keep), &[("env", "prod")]).is_some());
        assert!(run(std::slice::from_ref(&keep), &[("env", "dev")]).is_none());
        // Anchored: `prod` does not match `production`.
        assert!(run(std::slice::from_ref(&keep), &[("env", "production")]).is_none());
        // A missing label is the empty string, which does not match.
        assert!(run(&[keep], &[("other", "x")]).is_none());
        assert!(run(std::slice::from_ref(&drop), &[("env", "prod")]).is_none());
        assert_eq!(
            run(&[drop], &[("env", "dev")]),
            Some(labels(&[("env", "dev")]))
        );
    }

    #[test]
    fn hashmod_matches_md5_shards() {
        // Expected values computed independently with Python:
        //   d = hashlib.md5(s.encode()).digest(); int.from_bytes(d[8:], 'big') % m
        // '10.0.0.1:8080' -> 8530149591427357260 (mod 10 = 0, mod 1000 = 260)
        // '10.0.0.4:8080' -> 10811611273248037869 (mod 10 = 9, mod 7 = 1)
        // 'x;y'           -> 15403037210241300238 (mod 7 = 3)
        // ''              -> 16825458760271544958 (mod 1000 = 958)
        // Below u64::MAX, so the modulus leaves the whole 64-bit value.
        assert_eq!(hashmod("10.0.0.1:8080", u64::MAX), 8530149591427357260);
        assert_eq!(hashmod("10.0.0.1:8080", 10), 0);
        assert_eq!(hashmod("10.0.0.1:8080", 1000), 260);
        assert_eq!(hashmod("10.0.0.4:8080", 10), 9);
        assert_eq!(hashmod("10.0.0.4:8080", 7), 1);
        assert_eq!(hashmod("", 1000), 958);
        let r = rule(&[
            ("source_labels", "a,b"),
            ("modulus", "7"),
            ("target_label", "shard"),
            ("action", "hashmod"),
        ]);
        assert_eq!(
            run(&[r], &[("a", "x"), ("b", "y")]),
            Some(labels(&[("a", "x"), ("b", "y"), ("shard", "3")]))
        );
    }

    #[test]
    fn labelmap_labeldrop_labelkeep() {
        let map = rule(&[("regex", "__meta_kubernetes_(.+)"), ("action", "labelmap")]);
        let got = run(
            &[map],
            &[
                ("__meta_kubernetes_pod", "p1"),
                ("__meta_kubernetes_ns", "default"),
                ("job", "j"),
            ],
        );
        assert_eq!(
            got,
            Some(labels(&[
                ("__meta_kubernetes_pod", "p1"),
                ("__meta_kubernetes_ns", "default"),
                ("job", "j"),
                ("pod", "p1"),
                ("ns", "default")
            ]))
        );
        let map_prefix = rule(&[
            ("regex", "(a.*)"),
            ("replacement", "x_${1}"),
            ("action", "labelmap"),
        ]);
        assert_eq!(
            run(&[map_prefix], &[("ab", "1"), ("b", "2")]),
            Some(labels(&[("ab", "1"), ("b", "2"), ("x_ab", "1")]))
        );

        let drop = rule(&[("regex", "tmp_.*"), ("action", "labeldrop")]);
        assert_eq!(
            run(&[drop], &[("tmp_a", "1"), ("tmp_b", "2"), ("keep", "3")]),
            Some(labels(&[("keep", "3")]))
        );
        let keep = rule(&[("regex", "job|instance"), ("action", "labelkeep")]);
        assert_eq!(
            run(&[keep], &[("job", "j"), ("instance", "i"), ("other", "o")]),
            Some(labels(&[("job", "j"), ("instance", "i")]))
        );
    }

    #[test]
    fn lowercase_and_uppercase() {
        let lower = rule(&[
            ("source_labels", "a,b"),
            ("target_label", "l"),
            ("action", "lowercase"),
        ]);
        let upper = rule(&[
            ("source_labels", "a"),
            ("target_label", "a"),
            ("action", "uppercase"),
        ]);
        assert_eq!(
            run(&[lower], &[("a", "FoO"), ("b", "BaR")]),
            Some(labels(&[("a", "FoO"), ("b", "BaR"), ("l", "foo;bar")]))
        );
        assert_eq!(
            run(&[upper], &[("a", "foo")]),
            Some(labels(&[("a", "FOO")]))
        );
    }

    #[test]
    fn case_mapping_is_go_simple_mapping_per_character() {
        // Go's strings.ToUpper / ToLower (unicode.ToUpper / ToLower per rune).
        let upper = [
            ("straße", "STRAßE"), // ß has no one-character uppercase: kept
            ("ﬁx", "ﬁX"),         // the ligature likewise
            ("ŉ", "ŉ"),
            ("ᾳ", "ᾼ"), // iota subscript: simple uppercase is the titlecase form
            ("ᾀᾑᾧ", "ᾈᾙᾯ"),
            ("ᾈ", "ᾈ"), // already titlecase: no simple uppercase
            ("ῃῳ", "ῌῼ"),
            ("ǆ", "Ǆ"),
            ("äöü", "ÄÖÜ"),
            ("σς", "ΣΣ"),
        ];
        for (input, want) in upper {
            assert_eq!(go_to_upper(input), want, "upper {input:?}");
        }
        let lower = [
            ("İSTANBUL", "istanbul"), // İ → i, not i + combining dot
            ("ΟΔΟΣ", "οδοσ"),         // final sigma stays σ, per character
            ("ẞ", "ß"),
            ("ÄÖÜ", "äöü"),
            ("ǅ", "ǆ"),
        ];
        for (input, want) in lower {
            assert_eq!(go_to_lower(input), want, "lower {input:?}");
        }
        let rule_upper = rule(&[
            ("source_labels", "a"),
            ("target_label", "a"),
            ("action", "uppercase"),
        ]);
        assert_eq!(
            run(&[rule_upper], &[("a", "groß")]),
            Some(labels(&[("a", "GROß")]))
        );
    }

    #[test]
    fn dot_matches_a_newline_as_in_prometheus_3() {
        let re = compile_anchored("a.b").unwrap();
        assert!(re.is_match("a\nb"));
        assert!(compile_anchored(".*").unwrap().is_match("x\ny\n"));
        // Still anchored at both ends, whatever the regex says.
        assert!(!compile_anchored("a|b").unwrap().is_match("ab"));
        assert!(!compile_anchored("b").unwrap().is_match("a\nb"));
        let keep = rule(&[("source_labels", "a"), ("regex", "x.*"), ("action", "keep")]);
        assert_eq!(
            run(&[keep], &[("a", "x\ny")]),
            Some(labels(&[("a", "x\ny")]))
        );
    }

    #[test]
    fn keepequal_and_dropequal() {
        let keep = rule(&[
            ("source_labels", "__meta_port"),
            ("target_label", "port"),
            ("action", "keepequal"),
        ]);
        let drop = rule(&[
            ("source_labels", "__meta_port"),
            ("target_label", "port"),
            ("action", "dropequal"),
        ]);
        assert!(run(
            std::slice::from_ref(&keep),
            &[("__meta_port", "80"), ("port", "80")]
        )
        .is_some());
        assert!(run(
            std::slice::from_ref(&keep),
            &[("__meta_port", "80"), ("port", "81")]
        )
        .is_none());
        // Both absent: both empty, so equal.
        assert!(run(&[keep], &[("x", "1")]).is_some());
        assert!(run(
            std::slice::from_ref(&drop),
            &[("__meta_port", "80"), ("port", "80")]
        )
        .is_none());
        assert!(run(&[drop], &[("__meta_port", "80"), ("port", "81")]).is_some());
    }

    #[test]
    fn steps_run_in_order_and_stop_at_a_drop() {
        let set = rule(&[("target_label", "env"), ("replacement", "dev")]);
        let drop = rule(&[
            ("source_labels", "env"),
            ("regex", "dev"),
            ("action", "drop"),
        ]);
        assert!(run(&[set.clone(), drop.clone()], &[("a", "1")]).is_none());
        assert_eq!(
            run(&[drop, set], &[("a", "1")]),
            Some(labels(&[("a", "1"), ("env", "dev")]))
        );
    }

    #[test]
    fn action_names_are_case_insensitive() {
        assert_eq!(
            rule(&[("source_labels", "a"), ("action", "Keep")]).action,
            Action::Keep
        );
        assert_eq!(
            rule(&[("source_labels", "a"), ("action", "DROP")]).action,
            Action::Drop
        );
    }

    #[test]
    fn validation_table() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (&[("action", "explode")], "action", "unknown relabel action \"explode\""),
            (&[("action", "")], "action", "unknown relabel action \"\""),
            (&[("regex", "(")], "regex", "invalid regex \"(\""),
            (&[("source_labels", "a")], "target_label", "relabel configuration for replace action requires 'target_label' value"),
            (&[("source_labels", "a"), ("target_label", "t"), ("action", "hashmod")], "modulus", "relabel configuration for hashmod requires non-zero modulus"),
            (&[("source_labels", "a"), ("modulus", "2"), ("action", "hashmod")], "target_label", "requires 'target_label'"),
            (&[("source_labels", "a"), ("modulus", "2"), ("target_label", "$1"), ("action", "hashmod")], "target_label", "\"$1\" is invalid 'target_label' for hashmod action"),
            (&[("target_label", "1abc")], "target_label", "\"1abc\" is invalid 'target_label' for replace action"),
            (&[("target_label", "a-$1")], "target_label", "\"a-$1\" is invalid 'target_label' for replace action"),
            (&[("source_labels", "a"), ("action", "lowercase")], "target_label", "requires 'target_label'"),
            (&[("source_labels", "a"), ("target_label", "b"), ("replacement", "x"), ("action", "uppercase")], "replacement", "'replacement' can not be set for uppercase action"),
            (&[("source_labels", "a"), ("target_label", "b"), ("regex", "(.*)"), ("action", "keepequal")], "regex", "keepequal action requires only 'source_labels' and `target_label`, and no other fields"),
            (&[("source_labels", "a"), ("target_label", "b"), ("separator", ","), ("action", "dropequal")], "separator", "dropequal action requires only"),
            (&[("source_labels", "a"), ("regex", "x"), ("action", "labeldrop")], "source_labels", "labeldrop action requires only 'regex', and no other fields"),
            (&[("target_label", "b"), ("regex", "x"), ("action", "labelkeep")], "target_label", "labelkeep action requires only 'regex'"),
            (&[("regex", "(.*)"), ("replacement", "a-b"), ("action", "labelmap")], "replacement", "\"a-b\" is invalid 'replacement' for labelmap action"),
            // Several faults: the first in Prometheus's order is reported.
            (&[("source_labels", "a"), ("target_label", "b"), ("replacement", "x"), ("separator", ","), ("action", "keepequal")], "replacement", "'replacement' can not be set for keepequal action"),
            (&[("source_labels", "a"), ("target_label", "1bad"), ("action", "hashmod")], "modulus", "relabel configuration for hashmod requires non-zero modulus"),
            (&[("source_labels", "a"), ("target_label", "b"), ("replacement", "x"), ("action", "labeldrop")], "source_labels", "labeldrop action requires only 'regex', and no other fields"),
        ];
        for (spec, field, message) in cases {
            let err = try_rule(spec).expect_err(&format!("{spec:?} must be rejected"));
            assert_eq!(err.field(), *field, "{spec:?}");
            assert!(
                err.to_string().contains(message),
                "{spec:?}: {err} lacks {message:?}"
            );
        }
        // Accepted templates.
        assert!(try_rule(&[("target_label", "${1}_x")]).is_ok());
        assert!(try_rule(&[("target_label", "pre_$name")]).is_ok());
        assert!(try_rule(&[
            ("regex", "(.+)"),
            ("replacement", "${1}"),
            ("action", "labelmap")
        ])
        .is_ok());
    }

    #[test]
    fn utf8_names_accept_any_non_empty_target_and_labelmap_replacement() {
        assert!(try_rule(&[("target_label", "1abc"), ("utf8", "")]).is_ok());
        assert!(try_rule(&[("target_label", "a-$1"), ("utf8", "")]).is_ok());
        let labelmap = [("action", "labelmap"), ("replacement", "a-b"), ("utf8", "")];
        assert!(try_rule(&labelmap).is_ok());
        // Still required, and still refused when legacy.
        let empty = [("action", "labelmap"), ("replacement", ""), ("utf8", "")];
        assert!(matches!(
            try_rule(&empty),
            Err(RelabelError::InvalidReplacement { .. })
        ));
        assert!(try_rule(&[("action", "lowercase"), ("utf8", "")]).is_err());
        assert!(try_rule(&[("target_label", "1abc")]).is_err());
    }

    #[test]
    fn relabel_error_display_is_prometheus_wording() {
        use RelabelError as E;
        let cases: &[(E, &str, &str)] = &[
            (E::EmptyAction, "action", "relabel action cannot be empty"),
            (
                E::UnknownAction("Explode".into()),
                "action",
                "unknown relabel action \"Explode\"",
            ),
            (
                E::InvalidRegex {
                    regex: "(".into(),
                    reason: "unclosed group".into(),
                },
                "regex",
                "invalid regex \"(\": unclosed group",
            ),
            (
                E::ZeroModulus {
                    action: Action::Hashmod,
                },
                "modulus",
                "relabel configuration for hashmod requires non-zero modulus",
            ),
            (
                E::MissingTargetLabel {
                    action: Action::Lowercase,
                },
                "target_label",
                "relabel configuration for lowercase action requires 'target_label' value",
            ),
            (
                E::InvalidTargetLabel {
                    action: Action::Replace,
                    target_label: "1abc".into(),
                },
                "target_label",
                "\"1abc\" is invalid 'target_label' for replace action",
            ),
            (
                E::ReplacementSet {
                    action: Action::Keepequal,
                },
                "replacement",
                "'replacement' can not be set for keepequal action",
            ),
            (
                E::InvalidReplacement {
                    action: Action::Labelmap,
                    replacement: "a-b".into(),
                },
                "replacement",
                "\"a-b\" is invalid 'replacement' for labelmap action",
            ),
            (
                E::FieldNotAllowed {
                    action: Action::Dropequal,
                    only: OnlyFields::SourceLabelsAndTargetLabel,
                    field: "separator",
                },
                "separator",
                "dropequal action requires only 'source_labels' and `target_label`, and no other fields",
            ),
            (
                E::FieldNotAllowed {
                    action: Action::Labelkeep,
                    only: OnlyFields::Regex,
                    field: "source_labels",
                },
                "source_labels",
                "labelkeep action requires only 'regex', and no other fields",
            ),
        ];
        for (err, field, text) in cases {
            assert_eq!(err.to_string(), *text);
            assert_eq!(err.field(), *field, "{err}");
        }
        // A standard error, usable as a source.
        let boxed: Box<dyn std::error::Error> = Box::new(E::EmptyAction);
        assert_eq!(boxed.to_string(), "relabel action cannot be empty");
        // What the rule checks give, exactly.
        assert_eq!(
            try_rule(&[("regex", "(")]).unwrap_err(),
            E::InvalidRegex {
                regex: "(".into(),
                reason: "unclosed group".into()
            }
        );
        assert_eq!(
            try_rule(&[
                ("source_labels", "a"),
                ("target_label", "b"),
                ("regex", "x"),
                ("action", "keepequal")
            ])
            .unwrap_err(),
            E::FieldNotAllowed {
                action: Action::Keepequal,
                only: OnlyFields::SourceLabelsAndTargetLabel,
                field: "regex"
            }
        );
    }

    /// A rule of `action` that Prometheus accepts: the fields the action needs, no others.
    fn minimal_rule(action: Action) -> &'static str {
        match action {
            Action::Replace
            | Action::Lowercase
            | Action::Uppercase
            | Action::Keepequal
            | Action::Dropequal => "source_labels: [a]\n    target_label: t",
            Action::Hashmod => "source_labels: [a]\n    target_label: t\n    modulus: 3",
            Action::Keep | Action::Drop => "source_labels: [a]\n    regex: x",
            Action::Labelmap | Action::Labeldrop | Action::Labelkeep => "regex: x",
        }
    }

    #[test]
    fn every_action_in_the_table_round_trips_through_config_parsing() {
        assert_eq!(ACTIONS.len(), 11, "Prometheus has eleven relabel actions");
        for (i, &(name, action, requires)) in ACTIONS.iter().enumerate() {
            assert_eq!(action as usize, i);
            assert_eq!(action.as_str(), name);
            assert_eq!(action.requires(), requires);
            assert_eq!(action.to_string(), name);
            assert_eq!(Action::parse(name), Some(action));
            assert_eq!(Action::parse(&name.to_uppercase()), Some(action));
            assert_eq!(serde_json::to_value(action).unwrap(), name);
            for spelling in [name.to_string(), name.to_uppercase()] {
                let yaml = format!(
                    "job_name: j\nmetric_relabel_configs:\n  - action: {spelling}\n    {}\n",
                    minimal_rule(action)
                );
                let (jobs, errors) = crate::config::load_jobs(
                    &yaml,
                    "test",
                    &crate::config::GlobalConfig::default(),
                );
                assert!(errors.is_empty(), "{name}: {errors:?}");
                let rule = &jobs[0].metric_relabel_configs[0];
                assert_eq!(rule.action, action, "{yaml}");
                assert_eq!(serde_json::to_value(rule).unwrap()["action"], name);
            }
        }
        assert_eq!(Action::parse("explode"), None);
        assert_eq!(Action::default(), Action::Replace);
    }
}
