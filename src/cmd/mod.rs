//! One module per subcommand.

pub mod check;
pub mod jobs;
pub mod parse;
pub mod sim;
pub mod targets;
