//! Native histograms as Prometheus 3.16 models them (`model/histogram`): exponential
//! buckets (schema -4 to 8, each bucket `2^(2^-schema)` times as wide as the one below),
//! a zero bucket, and integer counts (buckets as deltas) or float counts (buckets absolute).
//!
//! What the scrape does with one, in Prometheus's order: the parser [`compact`]s it (no
//! empty bucket, no empty or adjacent spans); `native_histogram_min_bucket_factor` caps its
//! schema ([`max_schema_for_factor`], [`Histogram::reduce_resolution`]);
//! `native_histogram_bucket_limit` lowers the schema one step at a time until it fits
//! ([`Histogram::fit_bucket_limit`]); the agent storage [`validate`]s it.
//!
//! [`compact`]: Histogram::compact
//! [`validate`]: Histogram::validate

/// A run of consecutive buckets: `offset` is the gap to the previous span's end (for the
/// first span, its first bucket's index), `length` the number of buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Gap to the previous span, or the first index.
    pub offset: i32,
    /// Buckets in the span.
    pub length: u32,
}

/// The counts of a histogram, integer or float.
#[derive(Clone, Debug, PartialEq)]
pub enum Counts {
    /// An integer histogram; each bucket list holds deltas, the first one absolute.
    Int {
        /// Observations.
        count: u64,
        /// Observations in the zero bucket.
        zero_count: u64,
        /// Positive buckets, as deltas.
        positive: Vec<i64>,
        /// Negative buckets, as deltas.
        negative: Vec<i64>,
    },
    /// A float histogram; bucket counts absolute.
    Float {
        /// Observations.
        count: f64,
        /// Observations in the zero bucket.
        zero_count: f64,
        /// Positive buckets.
        positive: Vec<f64>,
        /// Negative buckets.
        negative: Vec<f64>,
    },
}

/// One native histogram sample's value.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    /// Resolution: -4 (coarsest) to 8.
    pub schema: i32,
    /// Width of the zero bucket.
    pub zero_threshold: f64,
    /// Sum of observations.
    pub sum: f64,
    /// Spans of the positive buckets.
    pub positive_spans: Vec<Span>,
    /// Spans of the negative buckets.
    pub negative_spans: Vec<Span>,
    /// Counts.
    pub counts: Counts,
    /// A gauge histogram (Prometheus's `GaugeType` counter reset hint).
    pub gauge: bool,
}

/// The coarsest exponential schema.
pub const SCHEMA_MIN: i32 = -4;
/// The finest exponential schema.
pub const SCHEMA_MAX: i32 = 8;

/// Why a histogram is refused (Prometheus's `Validate` and its scrape limits).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HistogramError(pub String);

/// Absolute `(bucket index, count)` pairs of one side.
fn absolute<T: Copy>(spans: &[Span], buckets: &[T], mut add: impl FnMut(i64, T)) {
    let mut index: i64 = 0;
    let mut b = 0;
    for span in spans {
        // The first offset is an index; each later one the gap after the previous span.
        index += i64::from(span.offset);
        for _ in 0..span.length {
            if let Some(&v) = buckets.get(b) {
                add(index, v);
            }
            b += 1;
            index += 1;
        }
    }
}

/// Spans for sorted, distinct absolute indices.
fn spans_of(indices: &[i64]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut next: i64 = 0;
    for &i in indices {
        match spans.last_mut() {
            Some(last) if i == next => last.length += 1,
            Some(_) => spans.push(Span {
                offset: (i - next) as i32,
                length: 1,
            }),
            None => spans.push(Span {
                offset: i as i32,
                length: 1,
            }),
        }
        next = i + 1;
    }
    spans
}

/// One side as absolute integer counts.
fn int_side(spans: &[Span], deltas: &[i64]) -> Vec<(i64, i64)> {
    let mut out = Vec::with_capacity(deltas.len());
    let mut running: i64 = 0;
    absolute(spans, deltas, |i, d| {
        running = running.wrapping_add(d);
        out.push((i, running));
    });
    out
}

fn float_side(spans: &[Span], counts: &[f64]) -> Vec<(i64, f64)> {
    let mut out = Vec::with_capacity(counts.len());
    absolute(spans, counts, |i, c| out.push((i, c)));
    out
}

/// Spans and deltas of absolute integer buckets.
fn int_encode(side: &[(i64, i64)]) -> (Vec<Span>, Vec<i64>) {
    let indices: Vec<i64> = side.iter().map(|&(i, _)| i).collect();
    let mut prev = 0;
    let deltas = side
        .iter()
        .map(|&(_, c)| {
            let d = c.wrapping_sub(prev);
            prev = c;
            d
        })
        .collect();
    (spans_of(&indices), deltas)
}

fn float_encode(side: &[(i64, f64)]) -> (Vec<Span>, Vec<f64>) {
    let indices: Vec<i64> = side.iter().map(|&(i, _)| i).collect();
    (spans_of(&indices), side.iter().map(|&(_, c)| c).collect())
}

/// Merges buckets into their bucket at a coarser schema (`(index - 1) >> steps) + 1`, as
/// Prometheus's `targetIdx`); the indices stay sorted, so equal targets are adjacent.
fn merge<T: Copy + std::ops::Add<Output = T>>(side: &[(i64, T)], steps: u32) -> Vec<(i64, T)> {
    let mut out: Vec<(i64, T)> = Vec::with_capacity(side.len());
    for &(i, c) in side {
        let target = ((i - 1) >> steps) + 1;
        match out.last_mut() {
            Some((last, sum)) if *last == target => *sum = *sum + c,
            _ => out.push((target, c)),
        }
    }
    out
}

impl Histogram {
    /// Buckets on both sides.
    pub fn bucket_count(&self) -> usize {
        match &self.counts {
            Counts::Int {
                positive, negative, ..
            } => positive.len() + negative.len(),
            Counts::Float {
                positive, negative, ..
            } => positive.len() + negative.len(),
        }
    }

    /// Prometheus's `Compact(0)`: empty buckets removed wherever they are, spans of length
    /// 0 dropped, spans that touch merged. Keeps the buckets' values and indices.
    pub fn compact(&mut self) {
        self.rewrite(
            |side| side.retain(|&(_, c)| c != 0),
            |side| side.retain(|&(_, c)| c != 0.0),
        );
    }

    /// Prometheus's `ReduceResolution(target)`: each bucket merged into the bucket of the
    /// coarser `target` schema that holds it. No-op unless `target < schema`.
    pub fn reduce_resolution(&mut self, target: i32) {
        if target >= self.schema {
            return;
        }
        let steps = (self.schema - target) as u32;
        self.rewrite(
            |side| *side = merge(side, steps),
            |side| *side = merge(side, steps),
        );
        self.schema = target;
    }

    /// `native_histogram_bucket_limit`: lowers the schema a step at a time until at most
    /// `limit` buckets remain; `Err` when even the coarsest schema has more.
    pub fn fit_bucket_limit(&mut self, limit: usize) -> Result<(), HistogramError> {
        let exceeded = || HistogramError("histogram bucket limit exceeded".into());
        if !(SCHEMA_MIN..=SCHEMA_MAX).contains(&self.schema) && self.bucket_count() > limit {
            return Err(exceeded());
        }
        while self.bucket_count() > limit {
            if self.schema <= SCHEMA_MIN {
                return Err(exceeded());
            }
            self.reduce_resolution(self.schema - 1);
        }
        Ok(())
    }

    /// Rewrites both sides as absolute buckets through `int` or `float`.
    fn rewrite(
        &mut self,
        int: impl Fn(&mut Vec<(i64, i64)>),
        float: impl Fn(&mut Vec<(i64, f64)>),
    ) {
        match &mut self.counts {
            Counts::Int {
                positive, negative, ..
            } => {
                for (spans, deltas) in [
                    (&mut self.positive_spans, positive),
                    (&mut self.negative_spans, negative),
                ] {
                    let mut side = int_side(spans, deltas);
                    int(&mut side);
                    (*spans, *deltas) = int_encode(&side);
                }
            }
            Counts::Float {
                positive, negative, ..
            } => {
                for (spans, counts) in [
                    (&mut self.positive_spans, positive),
                    (&mut self.negative_spans, negative),
                ] {
                    let mut side = float_side(spans, counts);
                    float(&mut side);
                    (*spans, *counts) = float_encode(&side);
                }
            }
        }
    }

    /// Prometheus's `Validate`, as the agent storage applies it to every histogram it is
    /// given: a valid schema, spans that fit their buckets with no negative offset after
    /// the first, no negative bucket, and (integer histograms) a count equal to the buckets'
    /// sum (at least it, when the sum is NaN). The messages are Prometheus's.
    pub fn validate(&self) -> Result<(), HistogramError> {
        let err = |m: String| Err(HistogramError(m));
        if !(SCHEMA_MIN..=SCHEMA_MAX).contains(&self.schema) {
            return err(format!(
                "histogram has an invalid schema, which must be between {SCHEMA_MIN} and {SCHEMA_MAX} for exponential buckets, or -53 for custom buckets, got schema {}",
                self.schema
            ));
        }
        let (pn, nn) = match &self.counts {
            Counts::Int {
                positive, negative, ..
            } => (positive.len(), negative.len()),
            Counts::Float {
                positive, negative, ..
            } => (positive.len(), negative.len()),
        };
        for (side, spans, n) in [
            ("positive", &self.positive_spans, pn),
            ("negative", &self.negative_spans, nn),
        ] {
            check_spans(spans, n).map_err(|m| HistogramError(format!("{side} side: {m}")))?;
        }
        let negative_bucket = |side: &str, i: usize, c: String| {
            err(format!(
                "{side} side: bucket number {} has observation count of {c}: histogram has a bucket whose observation count is negative",
                i + 1
            ))
        };
        match &self.counts {
            Counts::Int {
                count,
                zero_count,
                positive,
                negative,
            } => {
                let mut total: u64 = *zero_count;
                for (side, deltas) in [("negative", negative), ("positive", positive)] {
                    let mut running: i64 = 0;
                    for (i, d) in deltas.iter().enumerate() {
                        running = running.wrapping_add(*d);
                        if running < 0 {
                            return negative_bucket(side, i, running.to_string());
                        }
                        total = total.wrapping_add(running as u64);
                    }
                }
                if self.sum.is_nan() && total > *count {
                    return err(format!("{total} observations found in buckets, but the Count field is {count}: histogram's observation count should be at least the number of observations found in the buckets"));
                }
                if !self.sum.is_nan() && total != *count {
                    return err(format!("{total} observations found in buckets, but the Count field is {count}: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"));
                }
            }
            Counts::Float {
                count,
                zero_count,
                positive,
                negative,
            } => {
                if let Some(i) = negative.iter().position(|&c| c < 0.0) {
                    return negative_bucket("negative", i, negative[i].to_string());
                }
                if *zero_count < 0.0 {
                    return err(format!("zero bucket has observation count of {zero_count}: histogram has a bucket whose observation count is negative"));
                }
                if *count < 0.0 {
                    return err(format!(
                        "observation count is  {count}: histogram's observation count is negative"
                    ));
                }
                if let Some(i) = positive.iter().position(|&c| c < 0.0) {
                    return negative_bucket("positive", i, positive[i].to_string());
                }
            }
        }
        Ok(())
    }
}

/// Prometheus's `checkHistogramSpans`.
fn check_spans(spans: &[Span], buckets: usize) -> Result<(), String> {
    let mut total: usize = 0;
    let mut end: i64 = 0;
    for (n, span) in spans.iter().enumerate() {
        if n > 0 && span.offset < 0 {
            return Err(format!(
                "span number {} with offset {}: histogram has a span whose offset is negative",
                n + 1,
                span.offset
            ));
        }
        if n == 0 && span.offset == i32::MIN {
            return Err(format!("span number 1 starts at bucket index {}: histogram has a span whose bucket index is out of range", span.offset));
        }
        total += span.length as usize;
        end += i64::from(span.offset) + i64::from(span.length);
        if end - 1 > i64::from(i32::MAX) {
            return Err(format!(
                "span number {} ends at bucket index {}: histogram has a span whose bucket index is out of range",
                n + 1,
                end - 1
            ));
        }
    }
    if total != buckets {
        return Err(format!("spans need {total} buckets, have {buckets} buckets: histogram spans specify different number of buckets than provided"));
    }
    Ok(())
}

/// The schema `native_histogram_min_bucket_factor` allows (Prometheus's `pickSchema`): the
/// finest whose bucket growth factor `2^(2^-schema)` is at least `factor`; a factor of 1 or
/// less means no cap (schema 8).
pub fn max_schema_for_factor(factor: f64) -> i32 {
    let factor = if factor <= 1.0 { 1.00271 } else { factor };
    let floor = (-factor.log2().log2()).floor();
    if floor >= f64::from(SCHEMA_MAX) {
        SCHEMA_MAX
    } else if floor <= f64::from(SCHEMA_MIN) {
        SCHEMA_MIN
    } else {
        floor as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    fn int(count: u64, spans: Vec<Span>, deltas: Vec<i64>) -> Histogram {
        Histogram {
            schema: 0,
            zero_threshold: 0.0,
            sum: 1.0,
            positive_spans: spans,
            negative_spans: vec![],
            counts: Counts::Int {
                count,
                zero_count: 0,
                positive: deltas,
                negative: vec![],
            },
            gauge: false,
        }
    }

    fn positive(h: &Histogram) -> (Vec<Span>, Vec<i64>) {
        match &h.counts {
            Counts::Int { positive, .. } => (h.positive_spans.clone(), positive.clone()),
            Counts::Float { .. } => panic!("an integer histogram"),
        }
    }

    #[test]
    fn compact_drops_empty_buckets_and_joins_touching_spans() {
        // Buckets at 0..3 = [1, 0, 2] then (gap 0) 3..5 = [0, 4], an empty span, then 8 = [4].
        let mut h = int(
            11,
            vec![span(0, 3), span(0, 2), span(2, 0), span(1, 1)],
            vec![1, -1, 2, -2, 4, 0],
        );
        h.compact();
        // Absolute: 0→1, 2→2, 4→4, 8→4.
        assert_eq!(
            positive(&h),
            (
                vec![span(0, 1), span(1, 1), span(1, 1), span(3, 1)],
                vec![1, 1, 2, 0]
            )
        );
        assert_eq!(h.validate(), Ok(()));
    }

    #[test]
    fn reducing_resolution_merges_buckets_as_prometheus_indexes_them() {
        // Schema 1 indices -1, 0, 1, 2, 3 with counts 1..5: at schema 0 they go to
        // ((i-1)>>1)+1 = 0, 0, 1, 1, 2.
        let mut h = int(15, vec![span(-1, 5)], vec![1, 1, 1, 1, 1]);
        h.schema = 1;
        h.reduce_resolution(0);
        assert_eq!(h.schema, 0);
        assert_eq!(positive(&h), (vec![span(0, 3)], vec![3, 4, -2]));
        assert_eq!(h.validate(), Ok(()));
    }

    #[test]
    fn the_bucket_limit_lowers_the_schema_until_it_fits() {
        let mut h = int(
            4,
            vec![span(0, 1), span(3, 1), span(7, 1), span(15, 1)],
            vec![1, 0, 0, 0],
        );
        h.schema = 2;
        h.fit_bucket_limit(2).expect("fits");
        assert!(h.bucket_count() <= 2, "{h:?}");
        assert!(h.schema < 2);
        let mut wide = int(2, vec![span(0, 1), span(1_000_000, 1)], vec![1, 0]);
        wide.schema = SCHEMA_MIN;
        assert_eq!(
            wide.fit_bucket_limit(1),
            Err(HistogramError("histogram bucket limit exceeded".into()))
        );
    }

    #[test]
    fn validation_says_what_prometheus_says() {
        let h = int(5, vec![span(0, 2)], vec![1, 1]);
        assert_eq!(
            h.validate().unwrap_err().0,
            "3 observations found in buckets, but the Count field is 5: histogram's observation count should equal the number of observations found in the buckets (in absence of NaN)"
        );
        let h = int(2, vec![span(0, 1), span(-1, 1)], vec![1, 0]);
        assert_eq!(
            h.validate().unwrap_err().0,
            "positive side: span number 2 with offset -1: histogram has a span whose offset is negative"
        );
        let h = int(0, vec![span(0, 2)], vec![1, -2]);
        assert_eq!(
            h.validate().unwrap_err().0,
            "positive side: bucket number 2 has observation count of -1: histogram has a bucket whose observation count is negative"
        );
        let mut h = int(0, vec![], vec![]);
        h.schema = 9;
        assert!(h.validate().unwrap_err().0.ends_with("got schema 9"));
    }

    #[test]
    fn factors_map_to_schemas_as_pick_schema_does() {
        // 2^(2^-s): schema 0 → 2, 1 → 1.414, 2 → 1.189, 3 → 1.0905.
        assert_eq!(max_schema_for_factor(0.0), SCHEMA_MAX);
        assert_eq!(max_schema_for_factor(1.1), 2);
        assert_eq!(max_schema_for_factor(1.2), 1);
        assert_eq!(max_schema_for_factor(2.0), 0);
        assert_eq!(max_schema_for_factor(65536.0), -4);
        assert_eq!(max_schema_for_factor(1e300), SCHEMA_MIN);
    }
}
