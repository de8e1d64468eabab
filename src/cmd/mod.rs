//! One module per subcommand.

pub(crate) mod check;
pub(crate) mod jobs;
pub(crate) mod parse;
pub(crate) mod run;
pub(crate) mod sim;
pub(crate) mod targets;

/// Largest jobs file the commands read: room for 1M static targets (about 30 MB) many times
/// over, still far from what a member can hold.
pub(crate) const JOBS_FILE_BYTES_MAX: u64 = 256 << 20;

/// Reads a jobs file as text, at most [`JOBS_FILE_BYTES_MAX`] bytes from its open handle:
/// a regular file, or a pipe or device (`/dev/stdin`, a FIFO) through the same cap.
pub(crate) fn read_jobs_file(path: &std::path::Path) -> Result<String, String> {
    scrapepool_adapters::discovery::file::read_capped(path, JOBS_FILE_BYTES_MAX, false)
}

/// Reads the files of `scrape_config_files` for a configuration in `dir`: a relative pattern
/// is joined to `dir` (as Prometheus does), a `*` in its last element is a glob (Go's
/// `filepath.Glob` there), every match is read as the jobs file is.
pub(crate) fn config_files(
    dir: &std::path::Path,
) -> impl FnMut(&str) -> Result<Vec<scrapepool_core::config::ConfigFile>, String> + '_ {
    move |pattern| {
        let joined = dir.join(pattern);
        let joined = joined.to_string_lossy();
        let name = std::path::Path::new(joined.as_ref())
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        scrapepool_adapters::discovery::file::glob_match(name, "")?;
        let found = scrapepool_adapters::discovery::file::expand(&joined)
            .map_err(|e| e.trim_start_matches("file_sd: ").to_string())?;
        Ok(found
            .into_iter()
            .map(|path| (path.display().to_string(), read_jobs_file(&path)))
            .collect())
    }
}
