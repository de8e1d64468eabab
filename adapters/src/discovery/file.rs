//! `file_sd_configs`: target groups from JSON and YAML files, as Prometheus 2.42's
//! `discovery/file`.
//!
//! - Each pattern may have glob characters (`*`, `?`, `[...]`, as Go's `filepath.Match`) in
//!   its last path element only; matches are read in sorted order. A pattern with no match
//!   (or a missing plain path) gives no groups and no error, as Go's `filepath.Glob`.
//! - The format comes from the extension: `.json`, `.yml`, `.yaml` (anything else is an error
//!   for that file). A file holds a list of `{targets: [...], labels: {...}}`; unknown fields
//!   are errors (Prometheus decodes strictly). Each group gets the label
//!   `__meta_filepath` = the file's path and the source `<path>:<index>`.
//! - A file that cannot be read or parsed: the round's result keeps that file's previous
//!   groups (as Prometheus, which skips the file and so keeps what it sent before) and the
//!   other files' new groups; the round is then reported as `Ok(groups)` followed by
//!   `Err(message)` naming the file and the line, so the core holds the freshest good groups
//!   and shows the error until the file is fixed.
//!
//! Change detection: we poll, every [`CHANGE_POLL_INTERVAL`], the matched paths and each
//! file's size, modification time and inode, and re-read everything when any of them
//! changed — besides the full re-read every `refresh_interval`. Polling rather than the
//! `notify` crate: it needs no dependency, it sees files that newly match a glob, and it keeps
//! working across atomic renames and Kubernetes ConfigMap symlink swaps, which inotify
//! watches on a file lose; the cost is a few `stat` calls per second.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use scrapepool_core::config::{FileSdConfig, SdConfig, TargetGroup};
use scrapepool_core::labels::Labels;
use scrapepool_core::node::ProviderId;

use super::{Reporter, ADDRESS_LABEL};
use crate::ports::{Discoverer, EventSender};

/// How often the files are checked for changes.
pub const CHANGE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Longest a whole round of reading the files may take.
pub const READ_DEADLINE: Duration = Duration::from_secs(30);
/// Largest file read; larger files are an error.
pub const FILE_SIZE_BYTES_MAX: u64 = 64 << 20;
/// The group label naming the file a group came from.
pub const FILEPATH_LABEL: &str = "__meta_filepath";

/// File discovery; `poll_interval` is [`CHANGE_POLL_INTERVAL`] by default (tests shorten it).
#[derive(Clone, Debug)]
pub struct FileDiscoverer {
    /// How often the files are checked for changes.
    pub poll_interval: Duration,
}

impl Default for FileDiscoverer {
    fn default() -> Self {
        FileDiscoverer {
            poll_interval: CHANGE_POLL_INTERVAL,
        }
    }
}

/// What a round saw of one file: used to notice changes without reading.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Discoverer for FileDiscoverer {
    async fn run(&self, provider: ProviderId, config: SdConfig, events: EventSender) {
        let mut reporter = Reporter::new(provider, events);
        let SdConfig::File(config) = config else {
            reporter
                .report(Err("file discoverer given a non-file sd_config".into()))
                .await;
            return;
        };
        let poll = self.poll_interval.max(Duration::from_millis(10));
        let mut previous: BTreeMap<PathBuf, Vec<TargetGroup>> = BTreeMap::new();
        let mut stamps: Option<BTreeMap<PathBuf, Stamp>> = None;
        let mut last_read = tokio::time::Instant::now();
        loop {
            let current = match tokio::time::timeout(
                READ_DEADLINE,
                tokio::task::spawn_blocking({
                    let files = config.files.clone();
                    move || stamp_all(&files)
                }),
            )
            .await
            {
                Ok(Ok(s)) => Some(s),
                _ => None,
            };
            let due = last_read.elapsed() >= config.refresh_interval;
            if stamps.is_none() || current.is_none() || current != stamps || due {
                last_read = tokio::time::Instant::now();
                let (groups, errors) = match tokio::time::timeout(
                    READ_DEADLINE,
                    read_round(config.clone(), previous.clone()),
                )
                .await
                {
                    Ok((groups, errors, next)) => {
                        previous = next;
                        (groups, errors)
                    }
                    Err(_) => {
                        let kept = previous.values().flatten().cloned().collect();
                        (
                            kept,
                            vec![format!(
                                "file_sd: reading {:?} took longer than {}s",
                                config.files,
                                READ_DEADLINE.as_secs()
                            )],
                        )
                    }
                };
                if !reporter.report_round(groups, errors).await {
                    return;
                }
                stamps = current;
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// Reads every matched file; returns the groups (a bad file's previous ones), the errors,
/// and each file's groups for the next round.
async fn read_round(
    config: FileSdConfig,
    previous: BTreeMap<PathBuf, Vec<TargetGroup>>,
) -> (
    Vec<TargetGroup>,
    Vec<String>,
    BTreeMap<PathBuf, Vec<TargetGroup>>,
) {
    // Kept for when the reading task itself dies (a panic): then nothing changes.
    let fallback = previous.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let mut errors = Vec::new();
        let mut next = BTreeMap::new();
        for pattern in &config.files {
            let paths = match expand(pattern) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            for path in paths {
                if next.contains_key(&path) {
                    continue; // Two patterns matched it; Prometheus reads it once too.
                }
                match read_file(&path) {
                    Ok(groups) => {
                        next.insert(path, groups);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "file_sd: keeping the file's previous targets");
                        errors.push(e);
                        if let Some(groups) = previous.get(&path) {
                            next.insert(path, groups.clone());
                        }
                    }
                }
            }
        }
        (errors, next)
    })
    .await;
    match joined {
        Ok((errors, next)) => {
            let groups = next.values().flatten().cloned().collect();
            (groups, errors, next)
        }
        Err(e) => {
            let groups = fallback.values().flatten().cloned().collect();
            (
                groups,
                vec![format!("file_sd: reading task failed: {e}")],
                fallback,
            )
        }
    }
}

fn stamp_all(patterns: &[String]) -> BTreeMap<PathBuf, Stamp> {
    let mut out = BTreeMap::new();
    for pattern in patterns {
        for path in expand(pattern).unwrap_or_default() {
            // An unreadable file still gets a stamp, so that it turning readable is a change.
            let stamp = match std::fs::metadata(&path) {
                Ok(m) => Stamp {
                    len: m.len(),
                    modified: m.modified().ok(),
                    inode: m.ino(),
                },
                Err(_) => Stamp {
                    len: u64::MAX,
                    modified: None,
                    inode: 0,
                },
            };
            out.insert(path, stamp);
        }
    }
    out
}

/// The files a pattern names: the path itself, or the glob's matches in its directory, sorted.
pub fn expand(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(pattern);
    let name = match path.file_name().and_then(|n| n.to_str()) {
        Some(n) => n,
        None => return Err(format!("file_sd: {pattern:?}: not a file path")),
    };
    if !has_meta(name) {
        return Ok(if path.exists() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Go's Glob also validates the pattern even when the directory is missing.
    glob_match(name, "").map_err(|e| format!("file_sd: {pattern:?}: {e}"))?;
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(_) => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if glob_match(name, file_name).unwrap_or(false) && entry.path().is_file() {
            out.push(dir.join(file_name));
        }
    }
    out.sort();
    Ok(out)
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Go's `filepath.Match` for one path element: `*`, `?`, `[...]` with ranges and `^`
/// negation, `\` escapes. Errors on a malformed pattern.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Validate the whole pattern first, so a bad pattern errors whatever the name.
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '[' => i = class_end(&p, i)?,
            '\\' => {
                if i + 1 >= p.len() {
                    return Err("syntax error in pattern: trailing backslash".into());
                }
                i += 2;
            }
            _ => i += 1,
        }
    }
    Ok(match_from(&p, 0, &n, 0))
}

/// Index just past the class starting at `p[start] == '['`.
fn class_end(p: &[char], start: usize) -> Result<usize, String> {
    let mut i = start + 1;
    if i < p.len() && p[i] == '^' {
        i += 1;
    }
    let mut first = true;
    loop {
        if i >= p.len() {
            return Err("syntax error in pattern: unclosed [".into());
        }
        if p[i] == ']' && !first {
            return Ok(i + 1);
        }
        if p[i] == ']' && first {
            return Err("syntax error in pattern: empty []".into());
        }
        first = false;
        if p[i] == '\\' {
            i += 1;
        }
        i += 1;
        if i < p.len() && p[i] == '-' && i + 1 < p.len() && p[i + 1] != ']' {
            i += 1;
            if p[i] == '\\' {
                i += 1;
            }
            i += 1;
        }
    }
}

fn class_matches(p: &[char], start: usize, c: char) -> bool {
    let mut i = start + 1;
    let negated = i < p.len() && p[i] == '^';
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        let mut lo = p[i];
        if lo == '\\' {
            i += 1;
            lo = p[i];
        }
        i += 1;
        let mut hi = lo;
        if i + 1 < p.len() && p[i] == '-' && p[i + 1] != ']' {
            i += 1;
            hi = p[i];
            if hi == '\\' {
                i += 1;
                hi = p[i];
            }
            i += 1;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    matched != negated
}

fn match_from(p: &[char], pi: usize, n: &[char], ni: usize) -> bool {
    if pi == p.len() {
        return ni == n.len();
    }
    match p[pi] {
        '*' => (ni..=n.len())
            .any(|k| n[ni..k].iter().all(|&c| c != '/') && match_from(p, pi + 1, n, k)),
        '?' => ni < n.len() && n[ni] != '/' && match_from(p, pi + 1, n, ni + 1),
        '[' => {
            let Ok(end) = class_end(p, pi) else {
                return false;
            };
            ni < n.len()
                && n[ni] != '/'
                && class_matches(p, pi, n[ni])
                && match_from(p, end, n, ni + 1)
        }
        '\\' => {
            ni < n.len()
                && pi + 1 < p.len()
                && n[ni] == p[pi + 1]
                && match_from(p, pi + 2, n, ni + 1)
        }
        c => ni < n.len() && n[ni] == c && match_from(p, pi + 1, n, ni + 1),
    }
}

/// One group as written in a file.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Reads one file into its groups; errors name the file (and line and column when known).
pub fn read_file(path: &Path) -> Result<Vec<TargetGroup>, String> {
    let shown = path.display().to_string();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let is_json = match ext {
        "json" => true,
        "yml" | "yaml" => false,
        _ => {
            return Err(format!(
                "file_sd: {shown}: unknown extension {ext:?} (want .json, .yml or .yaml)"
            ))
        }
    };
    let meta = std::fs::metadata(path).map_err(|e| format!("file_sd: {shown}: {e}"))?;
    if meta.len() > FILE_SIZE_BYTES_MAX {
        return Err(format!(
            "file_sd: {shown}: {} bytes, more than the {FILE_SIZE_BYTES_MAX} allowed",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("file_sd: {shown}: {e}"))?;
    let raw: Vec<RawGroup> = if is_json {
        serde_json::from_str(&text)
            .map_err(|e| format!("file_sd: {shown}:{}:{}: {e}", e.line(), e.column()))?
    } else if text.trim().is_empty() {
        Vec::new() // An empty YAML document is no groups (Go's yaml gives a nil list).
    } else {
        let parsed: Option<Vec<RawGroup>> =
            serde_saphyr::from_str(&text).map_err(|e| match e.location() {
                Some(l) => format!(
                    "file_sd: {shown}:{}:{}: {}",
                    l.line(),
                    l.column(),
                    e.without_snippet()
                ),
                None => format!("file_sd: {shown}: {}", e.without_snippet()),
            })?;
        parsed.unwrap_or_default()
    };
    let mut groups = Vec::with_capacity(raw.len());
    for (i, g) in raw.into_iter().enumerate() {
        let mut labels = Labels::new();
        for (name, value) in g.labels.unwrap_or_default() {
            if !is_valid_label_name(&name) {
                return Err(format!(
                    "file_sd: {shown}: group {i}: {name:?} is not a valid label name"
                ));
            }
            labels.set(name, value);
        }
        labels.set(FILEPATH_LABEL.to_string(), shown.clone());
        let targets = g
            .targets
            .unwrap_or_default()
            .into_iter()
            .map(|t| Labels::from_pairs([(ADDRESS_LABEL, t)]))
            .collect();
        groups.push(TargetGroup {
            targets,
            labels,
            source: format!("{shown}:{i}"),
        });
    }
    Ok(groups)
}

/// Prometheus's label name rule: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_gos() {
        assert_eq!(glob_match("*.json", "a.json"), Ok(true));
        assert_eq!(glob_match("*.json", "a.yml"), Ok(false));
        assert_eq!(glob_match("t?.yml", "t1.yml"), Ok(true));
        assert_eq!(glob_match("t?.yml", "t12.yml"), Ok(false));
        assert_eq!(glob_match("t[0-4].yml", "t3.yml"), Ok(true));
        assert_eq!(glob_match("t[^0-4].yml", "t3.yml"), Ok(false));
        assert_eq!(glob_match("t[^0-4].yml", "t7.yml"), Ok(true));
        assert_eq!(glob_match("a\\*b", "a*b"), Ok(true));
        assert_eq!(glob_match("a\\*b", "axb"), Ok(false));
        assert!(glob_match("t[0-4.yml", "t3.yml").is_err());
        assert!(glob_match("[]", "x").is_err());
    }

    #[test]
    fn label_names() {
        assert!(is_valid_label_name("env"));
        assert!(is_valid_label_name("_x9"));
        assert!(!is_valid_label_name("9x"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name(""));
    }
}
