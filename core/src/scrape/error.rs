//! Why a scrape failed, worded as Prometheus words the same failure (`scrape/scrape.go`,
//! `scrape/target.go`, and Go's `net/http` for what its client reports).

use crate::exposition::ParseError;
use crate::labels::Labels;
use crate::protocol::ContentTypeError;

/// Why a scrape failed: the fetch (from the HTTP adapter) or the processing of the body.
///
/// `Display` is Prometheus's wording, as shown in the `lastError` of a target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    /// The scrape request cannot be made from the target's settings (URL, scheme, an
    /// unreadable credentials, CA or key file, a header that is not a header value).
    #[error("{reason}")]
    InvalidRequest {
        /// What is wrong, naming the setting or file.
        reason: String,
    },
    /// Connecting to the target failed (Go's `dial tcp`).
    #[error("Get \"{url}\": dial tcp {address}: {reason}")]
    Connect {
        /// The scrape URL.
        url: String,
        /// `host:port` dialed.
        address: String,
        /// Why, as Go says it (`connect: connection refused`).
        reason: String,
    },
    /// The TLS handshake failed.
    #[error("Get \"{url}\": tls: {reason}")]
    Tls {
        /// The scrape URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The HTTP exchange failed before a response arrived.
    #[error("Get \"{url}\": {reason}")]
    Request {
        /// The scrape URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The scrape timeout passed before the body was read.
    #[error("Get \"{url}\": context deadline exceeded")]
    Timeout {
        /// The scrape URL.
        url: String,
    },
    /// The target answered with a status other than 200 (Prometheus counts only 200 a
    /// success).
    #[error("server returned HTTP status {}", status_text(*.code, .reason))]
    HttpStatus {
        /// The status code.
        code: u16,
        /// Its reason phrase (empty when the code has none).
        reason: String,
    },
    /// Reading the body failed after the response began (Prometheus reports the read
    /// error alone, without the URL).
    #[error("{reason}")]
    ReadBody {
        /// Why.
        reason: String,
    },
    /// The body reached `body_size_limit` (Prometheus's `errBodySizeLimit`).
    #[error("body size limit exceeded")]
    BodySizeLimit,
    /// The gzip-encoded body does not inflate.
    #[error("gzip: {reason}")]
    Decompression {
        /// Why.
        reason: String,
    },
    /// The response's Content-Type selects no parser (Prometheus 3.16's words; see
    /// [`crate::protocol::format_for`]).
    #[error("{0}")]
    ContentType(ContentTypeError),
    /// The body is not valid in its format.
    #[error("{0}")]
    Parse(ParseError),
    /// More samples than `sample_limit` after metric relabeling (Prometheus's
    /// `errSampleLimit`).
    #[error("sample limit exceeded")]
    SampleLimit,
    /// A native histogram has more buckets than `native_histogram_bucket_limit` allows even
    /// at the coarsest schema.
    #[error("histogram bucket limit exceeded")]
    BucketLimit,
    /// A native histogram the agent storage would refuse (Prometheus's `Validate`).
    #[error("{0}")]
    InvalidHistogram(crate::histogram::HistogramError),
    /// The body holds more samples than the member's memory budget allows one scrape
    /// (`scrape::scrape_caps`); the parse stopped there.
    #[error("more than {samples} samples in one scrape, the most the memory budget allows (--memory-budget)")]
    SampleBudget {
        /// The cap.
        samples: u64,
    },
    /// A sample names one label twice (Prometheus's agent storage: `label name "%s" is not
    /// unique: invalid sample`).
    #[error("label name \"{name}\" is not unique: invalid sample")]
    DuplicateLabelName {
        /// The repeated label name.
        name: String,
    },
    /// A series with more labels than `label_limit`.
    #[error("label_limit exceeded (metric: {metric}, number of labels: {labels}, limit: {limit})")]
    LabelLimit {
        /// The metric name, at most 50 characters (Go's `%.50s`).
        metric: String,
        /// Its number of labels.
        labels: usize,
        /// The limit.
        limit: u64,
    },
    /// A label name longer than `label_name_length_limit`.
    #[error("label_name_length_limit exceeded (metric: {metric}, label name: {name}, length: {length}, limit: {limit})")]
    LabelNameLengthLimit {
        /// The metric name, at most 50 characters.
        metric: String,
        /// The label name, at most 50 characters.
        name: String,
        /// The name's length in bytes.
        length: usize,
        /// The limit.
        limit: u64,
    },
    /// A label value longer than `label_value_length_limit`.
    #[error("label_value_length_limit exceeded (metric: {metric}, label name: {name}, value: {value:?}, length: {length}, limit: {limit})")]
    LabelValueLengthLimit {
        /// The metric name, at most 50 characters.
        metric: String,
        /// The label name, at most 50 characters.
        name: String,
        /// The value, at most 50 characters (Go's `%.50q` quotes it).
        value: String,
        /// The value's length in bytes.
        length: usize,
        /// The limit.
        limit: u64,
    },
    /// Metric relabeling left a series without `__name__` (Prometheus's
    /// `errNameLabelMandatory`).
    #[error("missing metric name (__name__ label)")]
    MissingMetricName,
    /// A series whose metric name or label names are not valid after relabeling.
    #[error("invalid metric name or label names: {0}")]
    InvalidLabels(Labels),
}

/// Go's `resp.Status`: the code, then the reason phrase if any.
fn status_text(code: u16, reason: &str) -> String {
    if reason.is_empty() {
        code.to_string()
    } else {
        format!("{code} {reason}")
    }
}

impl ScrapeError {
    /// The failure a response status means, `None` for 200: Prometheus 3.16 counts only
    /// `200 OK` as a successful scrape (`server returned HTTP status 204 No Content`).
    pub fn from_status(code: u16, reason: &str) -> Option<ScrapeError> {
        (code != 200).then(|| ScrapeError::HttpStatus {
            code,
            reason: reason.to_string(),
        })
    }
}

impl From<ParseError> for ScrapeError {
    fn from(e: ParseError) -> ScrapeError {
        ScrapeError::Parse(e)
    }
}
