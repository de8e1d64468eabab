//! The `scrapepool` command line.

fn main() {
    println!("scrapepool {}", env!("CARGO_PKG_VERSION"));
}
