//! `scrapepool parse`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `scrapepool parse`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file to read.
    pub file: PathBuf,
}

/// Runs the command.
pub fn run(args: Args) -> ExitCode {
    eprintln!("scrapepool parse {}: not implemented yet", args.file.display());
    ExitCode::FAILURE
}
