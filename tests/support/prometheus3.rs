//! Finding the reference Prometheus (3.16) for the differential tests.
//!
//! Candidates, first usable wins: `$SCRAPEPOOL_PROMETHEUS_BIN`, then the build of
//! `scripts/go-tools.sh prometheus` in `${SCRAPEPOOL_CACHE:-~/.cache/scrapepool}/go/`.
//! A candidate whose `--version` names a 1.x or 2.x release (Debian's 2.42) is not the
//! reference and is passed over; the go-tools build reports an empty version and is taken.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The module version `scripts/go-tools.sh` builds Prometheus from.
pub(crate) const PROMETHEUS_MODULE_VERSION: &str = "v0.316.0";

/// Whether missing services are a failure rather than a skip.
pub(crate) fn services_required() -> bool {
    std::env::var("SCRAPEPOOL_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SCRAPEPOOL_CACHE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/scrapepool"))
}

/// The go-tools build of `name` (`prometheus`, `promtool`).
fn go_tools_build(name: &str) -> Option<PathBuf> {
    cache_dir().map(|d| {
        d.join("go")
            .join(format!("{name}-{PROMETHEUS_MODULE_VERSION}"))
            .join(name)
    })
}

/// Whether `bin --version` runs and names no 1.x or 2.x release.
fn is_reference(bin: &PathBuf) -> Result<(), String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let first = text.lines().next().unwrap_or("").to_string();
    if first.contains("version 1.") || first.contains("version 2.") {
        return Err(format!(
            "{} is not Prometheus 3.16 ({first})",
            bin.display()
        ));
    }
    Ok(())
}

/// The reference binary `name` (`prometheus` or `promtool`), or why there is none.
///
/// For `promtool`, `$SCRAPEPOOL_PROMETHEUS_BIN`'s directory is tried first.
pub(crate) fn reference_bin(name: &str) -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(bin) = std::env::var_os("SCRAPEPOOL_PROMETHEUS_BIN").filter(|b| !b.is_empty()) {
        let bin = PathBuf::from(bin);
        candidates.push(if name == "prometheus" {
            bin
        } else {
            bin.with_file_name(name)
        });
    }
    candidates.extend(go_tools_build(name));
    let mut why = Vec::new();
    for c in candidates {
        if !c.is_file() {
            why.push(format!("{} does not exist", c.display()));
            continue;
        }
        match is_reference(&c) {
            Ok(()) => return Ok(c),
            Err(e) => why.push(e),
        }
    }
    Err(format!(
        "no Prometheus 3.16 {name} ({}); scripts/go-tools.sh {name} builds it",
        why.join("; ")
    ))
}

/// The reference binary, or `None` after printing `SKIPPED` (a panic when services are
/// required).
pub(crate) fn reference_or_skip(test: &str, name: &str) -> Option<PathBuf> {
    match reference_bin(name) {
        Ok(bin) => Some(bin),
        Err(why) => {
            assert!(
                !services_required(),
                "{test}: {why} and SCRAPEPOOL_REQUIRE_SERVICES=1"
            );
            println!("SKIPPED: {test}: {why}");
            None
        }
    }
}
