//! The fuzz targets' bodies (`scrapepool_core::testing`), run on stable as ordinary tests:
//! over each target's seed corpus (`fuzz/corpus/<target>/`), over the fixtures they were
//! seeded from, and over a few thousand mutations of those drawn from a fixed seed, so a
//! failure here reproduces exactly. `cargo fuzz run <target>` explores the same bodies
//! further on nightly.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use scrapepool_core::exposition::{parse, Format};
use scrapepool_core::testing::{
    fuzz_config, fuzz_parse, fuzz_parse_protobuf, fuzz_rebalance, mutate, render, same_parse,
    Outcome, Rng,
};

/// Mutated inputs per target.
const MUTATIONS: usize = 3000;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file of a directory, sorted by name (deterministic order), or none if it is absent.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).expect("read a corpus file"),
            )
        })
        .collect()
}

/// A target's checked-in corpus plus its regression inputs (`core/tests/regressions/<target>/`:
/// inputs that once broke the body, kept apart so a corpus minimization never drops them).
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut seeds = files(&repo().join("fuzz/corpus").join(target));
    assert!(
        !seeds.is_empty(),
        "the seed corpus of {target} is empty or missing"
    );
    seeds.extend(files(&repo().join("core/tests/regressions").join(target)));
    seeds
}

/// Runs `body` on every input, catching panics so that one run reports every failure.
fn run_all<T>(inputs: &[(String, Vec<u8>)], body: impl Fn(&[u8]) -> T) {
    let mut failures = Vec::new();
    for (name, data) in inputs {
        if catch_unwind(AssertUnwindSafe(|| {
            body(data);
        }))
        .is_err()
        {
            failures.push(format!("{name}: {:?}", String::from_utf8_lossy(data)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs broke the body (see the panics above):\n{}",
        failures.len(),
        inputs.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `MUTATIONS` mutations of the seeds, from a fixed seed: named by index for reproduction.
fn mutations(seeds: &[(String, Vec<u8>)], seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(seed);
    (0..MUTATIONS)
        .map(|i| {
            let base = &seeds[rng.below(seeds.len())].1;
            let other = &seeds[rng.below(seeds.len())].1;
            // Fixtures are long: mutate a window of lines, as a fuzzer's minimized inputs are.
            let window = line_window(&mut rng, base);
            (
                format!("mutation {i} of seed {seed:#x}"),
                mutate(&mut rng, window, other),
            )
        })
        .collect()
}

fn line_window<'a>(rng: &mut Rng, data: &'a [u8]) -> &'a [u8] {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            data.iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&i| i < data.len())
        .collect();
    if starts.len() <= 40 {
        return data;
    }
    let first = rng.below(starts.len());
    let last = (first + 1 + rng.below(40)).min(starts.len());
    let end = starts.get(last).copied().unwrap_or(data.len());
    &data[starts[first]..end]
}

fn parses(data: &[u8], format: Format) -> bool {
    parse(data, format).is_ok()
}

fn assert_parses(name: &str, data: &[u8], format: Format) {
    if let Err(e) = parse(data, format) {
        panic!("seed {name} does not parse as {format:?}: {e}");
    }
}

/// How many of `inputs` parse; at least one must, or the round trip is not tested at all.
fn count_parsing(target: &str, inputs: &[(String, Vec<u8>)], format: Format) -> usize {
    let n = inputs.iter().filter(|(_, d)| parses(d, format)).count();
    println!("{target}: {n} of {} corpus inputs parse", inputs.len());
    assert!(n > 0, "no input of the {target} corpus parses");
    n
}

#[test]
fn parse_prometheus_corpus_and_fixtures() {
    // The corpus holds what coverage-guided runs kept (parsing or not); the fixtures are
    // real exporter output: every one of them must parse.
    let mut inputs = corpus("parse_prometheus");
    count_parsing("parse_prometheus", &inputs, Format::Prometheus);
    let fixtures = files(&repo().join("testdata/exposition"));
    for (name, data) in &fixtures {
        assert_parses(name, data, Format::Prometheus);
    }
    inputs.extend(fixtures);
    run_all(&inputs, |d| fuzz_parse(d, Format::Prometheus));
}

#[test]
fn parse_prometheus_mutations() {
    let inputs = mutations(&corpus("parse_prometheus"), 0x7072_6f6d);
    let parsed = inputs
        .iter()
        .filter(|(_, d)| parses(d, Format::Prometheus))
        .count();
    println!(
        "parse_prometheus: {parsed} of {} mutations parse",
        inputs.len()
    );
    // Both sides of the body must be exercised: round trips and errors.
    assert!(
        parsed > MUTATIONS / 10 && parsed < MUTATIONS,
        "{parsed} of {MUTATIONS} parse"
    );
    run_all(&inputs, |d| fuzz_parse(d, Format::Prometheus));
}

/// The OpenMetrics conformance suite's inputs, when the shared fixtures are present.
fn conformance_inputs() -> Vec<(String, Vec<u8>)> {
    let dir = match std::env::var_os("SCRAPEPOOL_SHARED") {
        Some(shared) => Path::new(&shared).join("fixtures/openmetrics-conformance"),
        None => repo().join("../shared/fixtures/openmetrics-conformance"),
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut cases: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .collect();
    cases.sort();
    cases
        .into_iter()
        .filter_map(|case| {
            let data = std::fs::read(case.join("metrics")).ok()?;
            Some((case.display().to_string(), data))
        })
        .collect()
}

#[test]
fn parse_openmetrics_corpus() {
    // Seeded with the conformance suite's good and bad cases, then grown by fuzzing.
    let inputs = corpus("parse_openmetrics");
    count_parsing("parse_openmetrics", &inputs, Format::OpenMetrics);
    run_all(&inputs, |d| fuzz_parse(d, Format::OpenMetrics));
    let suite = conformance_inputs();
    if suite.is_empty() {
        println!("SKIPPED: OpenMetrics conformance suite not found; corpus seeds only");
    } else {
        println!(
            "OpenMetrics conformance suite: {} cases through the body",
            suite.len()
        );
        run_all(&suite, |d| fuzz_parse(d, Format::OpenMetrics));
    }
}

#[test]
fn parse_openmetrics_mutations() {
    let mut seeds = corpus("parse_openmetrics");
    seeds.extend(
        conformance_inputs()
            .into_iter()
            .filter(|(_, d)| parses(d, Format::OpenMetrics)),
    );
    let inputs = mutations(&seeds, 0x6f70_656e);
    let parsed = inputs
        .iter()
        .filter(|(_, d)| parses(d, Format::OpenMetrics))
        .count();
    println!(
        "parse_openmetrics: {parsed} of {} mutations parse",
        inputs.len()
    );
    // OpenMetrics is strict (one stray byte breaks a body): a few percent survive.
    assert!(
        parsed > MUTATIONS / 100 && parsed < MUTATIONS,
        "{parsed} of {MUTATIONS} parse"
    );
    run_all(&inputs, |d| fuzz_parse(d, Format::OpenMetrics));
}

#[test]
fn parse_protobuf_corpus_fixtures_and_mutations() {
    let mut inputs = corpus("parse_protobuf");
    let fixtures: Vec<_> = files(&repo().join("testdata/exposition/go-exporter"))
        .into_iter()
        .filter(|(name, _)| name.ends_with(".pb"))
        .collect();
    assert!(fixtures.len() >= 6, "the protobuf fixtures are missing");
    for (name, data) in &fixtures {
        assert_parses(name, data, Format::Protobuf);
    }
    inputs.extend(fixtures);
    count_parsing("parse_protobuf", &inputs, Format::Protobuf);
    run_all(&inputs, fuzz_parse_protobuf);
    // Mutations of whole bodies: a binary format has no lines to window.
    let seeds = corpus("parse_protobuf");
    let mut rng = Rng(0x7062_7566);
    let mutated: Vec<(String, Vec<u8>)> = (0..MUTATIONS)
        .map(|i| {
            let base = &seeds[rng.below(seeds.len())].1;
            let other = &seeds[rng.below(seeds.len())].1;
            (format!("mutation {i}"), mutate(&mut rng, base, other))
        })
        .collect();
    let parsed = mutated
        .iter()
        .filter(|(_, d)| parses(d, Format::Protobuf))
        .count();
    println!("parse_protobuf: {parsed} of {MUTATIONS} mutations parse");
    assert!(
        parsed > MUTATIONS / 100 && parsed < MUTATIONS,
        "{parsed} of {MUTATIONS} parse"
    );
    run_all(&mutated, fuzz_parse_protobuf);
}

#[test]
fn config_load_corpus_and_mutations() {
    let mut inputs = corpus("config_load");
    inputs.extend(files(&repo().join("testdata/jobs")));
    let seeds = inputs.clone();
    // The seeds hold valid and invalid jobs: both paths of the loader are taken.
    let with_errors = seeds.iter().filter(|(_, d)| fuzz_config(d) > 0).count();
    assert!(
        with_errors > 0 && with_errors < seeds.len(),
        "{with_errors} of {} seeds have errors",
        seeds.len()
    );
    inputs.extend(mutations(&seeds, 0x6a6f_6273));
    run_all(&inputs, fuzz_config);
}

#[test]
fn render_writes_openmetrics_that_reads_the_same() {
    let body = b"# TYPE a counter\n# HELP a Say \\\"hi\\\".\na_total{x=\"q\\\"\\\\\"} 1 1.5\n# TYPE g gauge\n# EOF\n";
    let parsed = parse(body, Format::OpenMetrics).expect("the example parses");
    let text = render(&parsed, Format::OpenMetrics);
    assert_eq!(
        text,
        "# TYPE a counter\n# HELP a Say \\\"hi\\\".\na_total{x=\"q\\\"\\\\\"} 1 1.5\n# TYPE g gauge\n# EOF\n"
    );
    assert!(fuzz_parse(body, Format::OpenMetrics));
}

#[test]
fn render_keeps_openmetrics_timestamps_to_the_millisecond() {
    for ms in [0i64, 1, 1_001, -1_001, 1_700_000_000_123, -7, 999] {
        let body = format!("a {} {}\n# EOF\n", 1, ms as f64 / 1000.0);
        let parsed = parse(body.as_bytes(), Format::OpenMetrics).expect("parses");
        let again_text = render(&parsed, Format::OpenMetrics);
        let again = parse(again_text.as_bytes(), Format::OpenMetrics).expect("rendering parses");
        assert_eq!(
            again.samples[0].timestamp_ms, parsed.samples[0].timestamp_ms,
            "{body:?} -> {again_text:?}"
        );
    }
}

#[test]
fn same_parse_sees_value_bits_and_label_changes() {
    let a = parse(b"a{x=\"1\"} NaN\n", Format::Prometheus).expect("parses");
    assert_eq!(same_parse(&a, &a.clone()), Ok(()));
    let mut payload = a.clone();
    payload.samples[0].value = f64::from_bits(0x7ff0_0000_0000_0002); // Prometheus's StaleNaN
    assert!(
        same_parse(&a, &payload).is_err(),
        "NaN payloads must be told apart"
    );
    let b = parse(b"a{x=\"2\"} NaN\n", Format::Prometheus).expect("parses");
    assert!(same_parse(&a, &b).is_err());
    let c = parse(b"# HELP a other\na{x=\"1\"} NaN\n", Format::Prometheus).expect("parses");
    assert!(same_parse(&a, &c).is_err(), "metadata counts");
}

/// Adds up what rebalance runs exercised.
fn add(total: &mut Outcome, o: &Outcome) {
    total.steps += o.steps;
    total.agreed_steps += o.agreed_steps;
    total.moves += o.moves;
    total.removal_markers += o.removal_markers;
    total.scrapes_answered += o.scrapes_answered;
    total.targets_max = total.targets_max.max(o.targets_max);
    total.active_max = total.active_max.max(o.active_max);
}

#[test]
fn rebalance_corpus_and_regressions() {
    let inputs = corpus("rebalance");
    let total = std::cell::RefCell::new(Outcome::default());
    run_all(&inputs, |d| {
        add(&mut total.borrow_mut(), &fuzz_rebalance(d))
    });
    let total = total.into_inner();
    println!("rebalance corpus: {} inputs, {total:?}", inputs.len());
    // The corpus is worth something only if it reaches agreed clusters where targets move.
    assert!(
        total.agreed_steps > 0 && total.moves > 0 && total.targets_max > 0,
        "{total:?}"
    );
}

#[test]
fn rebalance_random_bytes() {
    // Random bytes and mutations of the corpus, decoded the way libFuzzer's inputs are.
    let seeds = corpus("rebalance");
    let mut rng = Rng(0x7265_6261);
    for i in 0..200 {
        let data: Vec<u8> = if i % 2 == 0 {
            (0..rng.below(600)).map(|_| rng.next_u64() as u8).collect()
        } else {
            let base = &seeds[rng.below(seeds.len())].1;
            let other = &seeds[rng.below(seeds.len())].1;
            mutate(&mut rng, base, other)
        };
        if catch_unwind(AssertUnwindSafe(|| fuzz_rebalance(&data))).is_err() {
            panic!("rebalance input {i} of seed 0x72656261 broke an invariant: {data:?}");
        }
    }
}

/// Writes seeds for `fuzz/corpus/rebalance`: random inputs that reach agreed clusters where
/// targets move, best first. Run once with
/// `SCRAPEPOOL_WRITE_SEEDS=1 cargo test -p scrapepool-core --test fuzz_bodies -- --ignored write_rebalance_seeds`.
#[test]
#[ignore = "writes files; run by hand to reseed the corpus"]
fn write_rebalance_seeds() {
    if std::env::var_os("SCRAPEPOOL_WRITE_SEEDS").is_none() {
        println!("SKIPPED: set SCRAPEPOOL_WRITE_SEEDS=1 to write seeds");
        return;
    }
    let mut rng = Rng(0x5eed);
    let mut found: Vec<(usize, Vec<u8>)> = Vec::new();
    for _ in 0..1500 {
        let len = 100 + rng.below(700);
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        let o = fuzz_rebalance(&data);
        if o.moves > 0 && o.agreed_steps > 0 {
            found.push((o.moves * o.agreed_steps + o.removal_markers, data));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    let dir = repo().join("fuzz/corpus/rebalance");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for (i, (_, data)) in found.iter().take(24).enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), data).expect("write a seed");
    }
    println!(
        "{} of 1500 random inputs move targets; wrote {}",
        found.len(),
        found.len().min(24)
    );
}
