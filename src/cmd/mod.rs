//! One module per subcommand.

pub mod check;
pub mod jobs;
pub mod parse;
pub mod run;
pub mod sim;
pub mod targets;

/// Largest jobs file the commands read (a pool's jobs are a few kilobytes each).
pub const JOBS_FILE_BYTES_MAX: u64 = 16 << 20;

/// Reads a jobs file as text, at most [`JOBS_FILE_BYTES_MAX`] bytes from its open handle:
/// a regular file, or a pipe or device (`/dev/stdin`, a FIFO) through the same cap.
pub fn read_jobs_file(path: &std::path::Path) -> Result<String, String> {
    scrapepool_adapters::discovery::file::read_capped(path, JOBS_FILE_BYTES_MAX, false)
}
