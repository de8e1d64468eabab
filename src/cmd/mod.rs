//! One module per subcommand.

pub mod check;
pub mod jobs;
pub mod parse;
pub mod run;
pub mod sim;
pub mod targets;
