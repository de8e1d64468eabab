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
//! - Only regular files are read: a FIFO, a device (a symlink to `/dev/zero`) or a socket
//!   that a pattern names is an error naming the file. The file is opened without blocking,
//!   checked on its open handle (not by a separate `stat` that could see another file), and
//!   read from that handle through the size cap: at most [`FILE_SIZE_BYTES_MAX`] + 1 bytes,
//!   whatever its metadata says.
//! - The blocking file-system calls of a provider run on one thread of its own at a time,
//!   waited for at most the read deadline: a call that hangs (a hung network mount) makes the
//!   round an error and keeps the previous groups, the next rounds wait for that same call
//!   instead of starting another (at most one stuck thread per provider), and nothing waits
//!   for it at stop or shutdown (the thread is not the runtime's, so dropping the runtime
//!   does not wait for it either).
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

/// File discovery; `poll_interval` is [`CHANGE_POLL_INTERVAL`] and `read_deadline`
/// [`READ_DEADLINE`] by default (tests shorten them).
#[derive(Clone, Debug)]
pub struct FileDiscoverer {
    /// How often the files are checked for changes.
    pub poll_interval: Duration,
    /// Longest a round's file-system calls are waited for.
    pub read_deadline: Duration,
}

impl Default for FileDiscoverer {
    fn default() -> Self {
        FileDiscoverer {
            poll_interval: CHANGE_POLL_INTERVAL,
            read_deadline: READ_DEADLINE,
        }
    }
}

/// Runs one provider's blocking file-system calls, one at a time, each on a thread of its
/// own that nobody joins (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Lane {
    /// Resolves when the call that outlived its deadline has returned.
    stuck: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Lane {
    /// Runs `work` on the lane's thread and waits at most `deadline` for it; `Err` when it
    /// (or a call still stuck from an earlier round, which is waited for first) did not
    /// finish in time, or panicked.
    pub(crate) async fn run<T: Send + 'static>(
        &mut self,
        deadline: Duration,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let seconds = deadline.as_secs_f64();
        if let Some(stuck) = &mut self.stuck {
            if tokio::time::timeout(deadline, stuck).await.is_err() {
                return Err(format!(
                    "an earlier read has been blocked for more than {seconds}s; not starting another"
                ));
            }
            self.stuck = None;
        }
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<T>();
        std::thread::Builder::new()
            .name("file-sd".into())
            .spawn(move || {
                let _ = tx.send(work());
                drop(done_tx);
            })
            .map_err(|e| format!("cannot start a reading thread: {e}"))?;
        match tokio::time::timeout(deadline, &mut rx).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err("the reading thread failed".into()),
            Err(_) => {
                self.stuck = Some(done_rx);
                Err(format!("took longer than {seconds}s"))
            }
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
        let deadline = self.read_deadline;
        let mut lane = Lane::default();
        let mut previous: BTreeMap<PathBuf, Vec<TargetGroup>> = BTreeMap::new();
        let mut stamps: Option<BTreeMap<PathBuf, Stamp>> = None;
        let mut last_read = tokio::time::Instant::now();
        loop {
            let files = config.files.clone();
            let current = lane.run(deadline, move || stamp_all(&files)).await.ok();
            let due = last_read.elapsed() >= config.refresh_interval;
            if stamps.is_none() || current.is_none() || current != stamps || due {
                last_read = tokio::time::Instant::now();
                let kept = previous.clone();
                let files = config.clone();
                let (groups, errors) =
                    match lane.run(deadline, move || read_round(&files, &kept)).await {
                        Ok((groups, errors, next)) => {
                            previous = next;
                            (groups, errors)
                        }
                        Err(e) => {
                            let kept = previous.values().flatten().cloned().collect();
                            (
                                kept,
                                vec![format!("file_sd: reading {:?}: {e}", config.files)],
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
/// and each file's groups for the next round. Blocking: runs on the provider's [`Lane`].
fn read_round(
    config: &FileSdConfig,
    previous: &BTreeMap<PathBuf, Vec<TargetGroup>>,
) -> (
    Vec<TargetGroup>,
    Vec<String>,
    BTreeMap<PathBuf, Vec<TargetGroup>>,
) {
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
    let groups = next.values().flatten().cloned().collect();
    (groups, errors, next)
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
        // Directories are skipped; anything else that matches (a FIFO, a device) is read,
        // which reports it as not a regular file.
        if glob_match(name, file_name).unwrap_or(false) && !entry.path().is_dir() {
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

/// Reads the UTF-8 text of `path` from one open handle, at most `cap` bytes: a longer one is
/// an error, whatever its metadata says (a device or a pipe has none to trust).
///
/// With `regular_only`, the file is opened without blocking (so a FIFO with no writer does not
/// hang the open) and anything but a regular file (after symlinks: a FIFO, `/dev/zero`, a
/// socket) is an error before a byte is read. Without it (the CLI reading `/dev/stdin` or a
/// pipe), pipes and devices are read, through the same cap.
pub fn read_capped(path: &Path, cap: u64, regular_only: bool) -> Result<String, String> {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    if regular_only {
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| e.to_string())?;
    let kind = file.metadata().map_err(|e| e.to_string())?.file_type();
    if regular_only && !kind.is_file() {
        let what = if kind.is_fifo() {
            "a named pipe"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(format!("{what}, not a regular file; not read"));
    }
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > cap {
        return Err(format!("larger than the {cap} bytes allowed; not read"));
    }
    String::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())
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
    let text = read_capped(path, FILE_SIZE_BYTES_MAX, true)
        .map_err(|e| format!("file_sd: {shown}: {e}"))?;
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
    fn a_stuck_call_keeps_its_lane_and_holds_neither_the_caller_nor_the_runtime() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let started = Arc::new(AtomicUsize::new(0));
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let deadline = Duration::from_millis(100);
        let t0 = std::time::Instant::now();
        let mut lane = Lane::default();
        rt.block_on(async {
            // A call that hangs (a hung mount): the caller gets an error at the deadline.
            let s = started.clone();
            let e = lane
                .run(deadline, move || {
                    s.fetch_add(1, Ordering::SeqCst);
                    let _ = blocked.recv();
                })
                .await
                .unwrap_err();
            assert_eq!(e, "took longer than 0.1s");
            // The next rounds wait for it and start no second thread.
            for _ in 0..3 {
                let s = started.clone();
                let e = lane
                    .run(deadline, move || {
                        s.fetch_add(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap_err();
                assert_eq!(
                    e,
                    "an earlier read has been blocked for more than 0.1s; not starting another"
                );
            }
            assert_eq!(started.load(Ordering::SeqCst), 1);
            // Once it returns, the lane works again.
            release.send(()).unwrap();
            assert_eq!(lane.run(deadline, || 7).await, Ok(7));
        });
        // A call stuck for good does not hold the runtime's drop (shutdown).
        let (_keep, never) = std::sync::mpsc::channel::<()>();
        let e = rt.block_on(lane.run(deadline, move || {
            let _ = never.recv();
        }));
        assert!(e.is_err());
        drop(rt);
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }

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
