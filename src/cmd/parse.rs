//! `scrapepool parse`: reads an exposition file and prints its samples as JSON lines in
//! prometheus-kafka-adapter's layout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use scrapepool_core::exposition::{parse_with, Format, ParseOptions, Parsed};
use scrapepool_core::format::{write_float, write_json_string, write_rfc3339_ms};

/// The formats the command reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub(crate) enum FormatArg {
    /// Prometheus text format 0.0.4.
    #[default]
    Prometheus,
    /// OpenMetrics 1.0 text.
    Openmetrics,
    /// The Prometheus protobuf format (delimited `MetricFamily` messages).
    Protobuf,
}

/// Arguments of `scrapepool parse`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The format of the file.
    #[arg(long, value_enum, default_value_t = FormatArg::Prometheus)]
    pub format: FormatArg,
    /// The file to read.
    pub file: PathBuf,
}

/// Runs the command: one JSON object per sample on stdout, or `FILE:line:column: reason`
/// (`FILE:byte N: reason` for protobuf) on stderr and a failure exit code.
pub(crate) fn run(args: Args) -> ExitCode {
    let shown = args.file.display();
    let body = match std::fs::read(&args.file) {
        Ok(body) => body,
        Err(e) => {
            eprintln!("{shown}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let format = match args.format {
        FormatArg::Prometheus => Format::Prometheus,
        FormatArg::Openmetrics => Format::OpenMetrics,
        FormatArg::Protobuf => Format::Protobuf,
    };
    let parsed = match parse_with(
        &body,
        format,
        &ParseOptions {
            keep_exemplars: false,
            ..ParseOptions::default()
        },
    ) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{shown}:{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut line = String::new();
    for index in 0..parsed.samples.len() {
        line.clear();
        sample_json(&parsed, index, &mut line);
        line.push('\n');
        if let Err(e) = stdout.write_all(line.as_bytes()) {
            eprintln!("writing to stdout: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = stdout.flush() {
        eprintln!("writing to stdout: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Appends sample `index` as `{"timestamp":..,"value":..,"name":..,"labels":{..}}`; the
/// timestamp only when the payload gives one. Labels (with `__name__`) are sorted by name
/// as Go's `encoding/json` sorts a map's keys.
fn sample_json(parsed: &Parsed<'_>, index: usize, out: &mut String) {
    let sample = &parsed.samples[index];
    out.push('{');
    if let Some(ts) = sample.timestamp_ms {
        out.push_str("\"timestamp\":\"");
        write_rfc3339_ms(out, ts);
        out.push_str("\",");
    }
    out.push_str("\"value\":\"");
    write_float(out, sample.value);
    out.push_str("\",\"name\":");
    write_json_string(out, &sample.name);
    out.push_str(",\"labels\":{");
    let mut labels: Vec<(&str, &str)> = vec![("__name__", &sample.name)];
    labels.extend(
        parsed
            .labels_of(sample)
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref())),
    );
    labels.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_string(out, k);
        out.push(':');
        write_json_string(out, v);
    }
    out.push_str("}}");
}
