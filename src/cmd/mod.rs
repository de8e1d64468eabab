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
