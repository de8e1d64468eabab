//! Scrape protocols: the `Accept` header a scrape sends and the parser a response's
//! `Content-Type` selects, as Prometheus 3.16 does (`config.ScrapeProtocol`,
//! `scrape.acceptHeader`, `textparse.New`). See ARCHITECTURE.md, "Exposition formats".

use std::fmt;

use crate::exposition::Format;
use crate::labels::{EscapingScheme, ValidationScheme};

/// A `scrape_protocols` / `fallback_scrape_protocol` entry, spelled as Prometheus spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScrapeProtocol {
    /// `PrometheusProto`: the delimited protobuf format.
    PrometheusProto,
    /// `PrometheusText0.0.4`.
    PrometheusText0_0_4,
    /// `PrometheusText1.0.0`: the text format with quoted UTF-8 names.
    PrometheusText1_0_0,
    /// `OpenMetricsText0.0.1`.
    OpenMetricsText0_0_1,
    /// `OpenMetricsText1.0.0`.
    OpenMetricsText1_0_0,
    /// `OpenMetricsText2.0.0` (Prometheus parses a 2.0 body only behind a feature flag).
    OpenMetricsText2_0_0,
}

/// What Prometheus 3.16 proposes when a job sets no `scrape_protocols` and does not scrape
/// native histograms (`config.DefaultScrapeProtocols`).
pub const DEFAULT_SCRAPE_PROTOCOLS: &[ScrapeProtocol] = &ScrapeProtocol::DEFAULT;

/// What Prometheus 3.16 proposes when a job scrapes native histograms
/// (`config.DefaultProtoFirstScrapeProtocols`).
pub const DEFAULT_PROTO_FIRST_SCRAPE_PROTOCOLS: &[ScrapeProtocol] = &ScrapeProtocol::PROTO_FIRST;

impl ScrapeProtocol {
    /// Every protocol, in the sorted order of their names (as Prometheus lists them in errors).
    pub const ALL: [ScrapeProtocol; 6] = [
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText2_0_0,
        ScrapeProtocol::PrometheusProto,
        ScrapeProtocol::PrometheusText0_0_4,
        ScrapeProtocol::PrometheusText1_0_0,
    ];

    /// [`DEFAULT_SCRAPE_PROTOCOLS`] as an array.
    pub const DEFAULT: [ScrapeProtocol; 4] = [
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ];

    /// [`DEFAULT_PROTO_FIRST_SCRAPE_PROTOCOLS`] as an array.
    pub const PROTO_FIRST: [ScrapeProtocol; 5] = [
        ScrapeProtocol::PrometheusProto,
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ];

    /// The name written in a configuration (as [`ScrapeProtocol::name`]).
    pub fn as_str(self) -> &'static str {
        self.name()
    }

    /// The protocol named `name` (as [`ScrapeProtocol::from_name`]).
    pub fn parse(name: &str) -> Option<ScrapeProtocol> {
        Self::from_name(name)
    }

    /// The name written in a configuration.
    pub fn name(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => "PrometheusProto",
            ScrapeProtocol::PrometheusText0_0_4 => "PrometheusText0.0.4",
            ScrapeProtocol::PrometheusText1_0_0 => "PrometheusText1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
            ScrapeProtocol::OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
            ScrapeProtocol::OpenMetricsText2_0_0 => "OpenMetricsText2.0.0",
        }
    }

    /// The protocol named `name` (exact spelling, as Prometheus's map lookup).
    pub fn from_name(name: &str) -> Option<ScrapeProtocol> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Its media range in an `Accept` header (`config.ScrapeProtocolsHeaders`).
    pub fn header(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            }
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
            ScrapeProtocol::OpenMetricsText2_0_0 => "application/openmetrics-text;version=2.0.0",
        }
    }

    /// Its media type without parameters (`ScrapeProtocol.HeaderMediaType`).
    pub fn media_type(self) -> &'static str {
        let header = self.header();
        header.split_once(';').map_or(header, |(t, _)| t)
    }

    /// Whether the `Accept` entry carries the `escaping` parameter (the formats that can
    /// carry UTF-8 names).
    fn escapes(self) -> bool {
        matches!(
            self,
            ScrapeProtocol::PrometheusText1_0_0
                | ScrapeProtocol::OpenMetricsText1_0_0
                | ScrapeProtocol::OpenMetricsText2_0_0
        )
    }

    /// Prometheus's error for a name that is no protocol:
    /// `unknown scrape protocol X, supported: [A B ...]`.
    pub fn unknown_message(name: &str) -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
        format!(
            "unknown scrape protocol {name}, supported: [{}]",
            names.join(" ")
        )
    }
}

impl serde::Serialize for ScrapeProtocol {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for ScrapeProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a scrape asks for and how it reads the answer's names: one job's
/// `scrape_protocols`, `metric_name_escaping_scheme`, `fallback_scrape_protocol` and
/// `metric_name_validation_scheme`, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpositionSpec {
    /// The `Accept` header ([`accept_header`] of the job's protocols and escaping scheme).
    pub accept_header: String,
    /// The format of a response whose `Content-Type` is missing or selects no parser.
    pub fallback: Option<ScrapeProtocol>,
    /// Which final metric and label names are valid; an invalid one fails the scrape.
    pub validation: ValidationScheme,
}

impl ExpositionSpec {
    /// The settings of a job with these keys.
    pub fn new(
        protocols: &[ScrapeProtocol],
        escaping: EscapingScheme,
        fallback: Option<ScrapeProtocol>,
        validation: ValidationScheme,
    ) -> ExpositionSpec {
        ExpositionSpec {
            accept_header: accept_header(protocols, escaping),
            fallback,
            validation,
        }
    }
}

impl Default for ExpositionSpec {
    /// Prometheus 3.16's defaults: the default protocols with `escaping=allow-utf-8`, no
    /// fallback, `utf8` validation.
    fn default() -> Self {
        ExpositionSpec::new(
            DEFAULT_SCRAPE_PROTOCOLS,
            EscapingScheme::AllowUtf8,
            None,
            ValidationScheme::Utf8,
        )
    }
}

/// The default `scrape_protocols` of a job, as Prometheus 3.16 picks it when neither the job
/// nor `global:` sets one: protobuf first when the job scrapes native histograms.
pub fn default_scrape_protocols(native_histograms: bool) -> &'static [ScrapeProtocol] {
    if native_histograms {
        DEFAULT_PROTO_FIRST_SCRAPE_PROTOCOLS
    } else {
        DEFAULT_SCRAPE_PROTOCOLS
    }
}

/// The `Accept` header for `protocols` in order of preference, byte for byte Prometheus
/// 3.16's `acceptHeader`: q-values from `0.7` down, `escaping=<scheme>` on the formats that
/// can carry UTF-8 names, and `*/*` last.
pub fn accept_header(protocols: &[ScrapeProtocol], escaping: EscapingScheme) -> String {
    // Prometheus starts at one more than the number of known protocols.
    let mut weight = ScrapeProtocol::ALL.len() + 1;
    let mut out = String::with_capacity(64 * (protocols.len() + 1));
    for p in protocols {
        out.push_str(p.header());
        if p.escapes() {
            out.push_str(";escaping=");
            out.push_str(escaping.as_str());
        }
        out.push_str(&format!(";q=0.{weight},"));
        weight = weight.saturating_sub(1);
    }
    out.push_str(&format!("*/*;q=0.{weight}"));
    out
}

/// Why a response's `Content-Type` selects no parser; the text is Prometheus 3.16's
/// (`textparse.extractMediaType`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ContentTypeError(pub String);

/// The format to parse a response in, from its `Content-Type` and the job's
/// `fallback_scrape_protocol`, as Prometheus 3.16's `textparse.New` chooses:
///
/// - `application/openmetrics-text` → OpenMetrics (a `version=2.0.0` body is refused, as
///   Prometheus does without its `openmetrics2` feature flag), `text/plain` → the text
///   format (0.0.4 and 1.0.0 are read by one parser), `application/vnd.google.protobuf` →
///   the protobuf format (whatever its `proto` and `encoding` parameters say, as in
///   Prometheus);
/// - a missing or empty header, one Go's `mime.ParseMediaType` refuses, or any other media
///   type: the fallback protocol's format when one is set, else the scrape fails.
pub fn format_for(
    content_type: Option<&str>,
    fallback: Option<ScrapeProtocol>,
) -> Result<Format, ContentTypeError> {
    let content_type = content_type.unwrap_or("");
    let fallback_type = fallback.map(ScrapeProtocol::media_type);
    let with_fallback = |why: String| match fallback_type {
        Some(t) => Ok(media_format(t)),
        None => Err(ContentTypeError(why)),
    };
    if content_type.is_empty() {
        return with_fallback(
            "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target".into(),
        );
    }
    let (media_type, version) = match parse_media_type(content_type) {
        Ok(parsed) => parsed,
        Err(mime_error) => {
            return with_fallback(format!(
                "cannot parse Content-Type {content_type:?} and no fallback_scrape_protocol for target\n{mime_error}"
            ));
        }
    };
    if media_type == "application/openmetrics-text" && version.as_deref() == Some("2.0.0") {
        return with_fallback(format!(
            "received OpenMetrics 2.0 Content-Type {content_type:?}, but the openmetrics2 feature flag is not enabled and no fallback_scrape_protocol specified for target"
        ));
    }
    match media_type.as_str() {
        "application/openmetrics-text" | "text/plain" | "application/vnd.google.protobuf" => {
            Ok(media_format(&media_type))
        }
        _ => with_fallback(format!(
            "received unsupported Content-Type {content_type:?} and no fallback_scrape_protocol specified for target"
        )),
    }
}

/// The parser of a recognised media type (one of the three [`format_for`] lets through).
fn media_format(media_type: &str) -> Format {
    match media_type {
        "application/openmetrics-text" => Format::OpenMetrics,
        "application/vnd.google.protobuf" => Format::Protobuf,
        _ => Format::Prometheus,
    }
}

/// Go's `mime.ParseMediaType`, as far as Prometheus uses it: the media type (lower case,
/// trimmed) and the `version` parameter, or Go's error text.
pub(crate) fn parse_media_type(value: &str) -> Result<(String, Option<String>), &'static str> {
    fn is_token(c: u8) -> bool {
        c > b' ' && c < 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&c)
    }
    fn token(s: &[u8], mut i: usize) -> usize {
        while i < s.len() && is_token(s[i]) {
            i += 1;
        }
        i
    }
    fn skip_space(s: &[u8], mut i: usize) -> usize {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }
    let base = value.split_once(';').map_or(value, |(b, _)| b);
    let media_type = base.trim().to_ascii_lowercase();
    // `type` or `type/subtype` (Go's checkMediaTypeDisposition).
    let mt = media_type.as_bytes();
    let type_end = token(mt, 0);
    if type_end == 0 {
        return Err("mime: no media type");
    }
    if type_end < mt.len() {
        if mt[type_end] != b'/' {
            return Err("mime: expected slash after first token");
        }
        let sub_end = token(mt, type_end + 1);
        if sub_end == type_end + 1 {
            return Err("mime: expected token after slash");
        }
        if sub_end != mt.len() {
            return Err("mime: unexpected content after media subtype");
        }
    }
    let mut params: Vec<(String, String)> = Vec::new();
    let mut rest = &value[base.len()..];
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let s = rest.as_bytes();
        // `; name = value`, value a token or a quoted string.
        let invalid = "mime: invalid media parameter";
        if s[0] != b';' {
            return Err(invalid);
        }
        let mut i = skip_space(s, 1);
        let key_end = token(s, i);
        if key_end == i {
            // A trailing `;` is ignored; anything else is an error.
            if rest[1..].trim().is_empty() {
                break;
            }
            return Err(invalid);
        }
        let key = rest[i..key_end].to_ascii_lowercase();
        i = skip_space(s, key_end);
        if i >= s.len() || s[i] != b'=' {
            return Err(invalid);
        }
        i = skip_space(s, i + 1);
        let param_value = if i < s.len() && s[i] == b'"' {
            let mut v = Vec::new();
            i += 1;
            loop {
                match s.get(i) {
                    None => return Err(invalid),
                    Some(b'"') => break,
                    Some(b'\\') if i + 1 < s.len() => {
                        v.push(s[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            i += 1;
            String::from_utf8_lossy(&v).into_owned()
        } else {
            let end = token(s, i);
            if end == i {
                return Err(invalid);
            }
            let v = rest[i..end].to_string();
            i = end;
            v
        };
        // A repeated parameter is an error unless it repeats the same value.
        if let Some((_, earlier)) = params.iter().find(|(k, _)| *k == key) {
            if *earlier != param_value {
                return Err("mime: duplicate parameter name");
            }
        } else {
            params.push((key, param_value));
        }
        rest = &rest[i.min(rest.len())..];
    }
    let version = params
        .into_iter()
        .find(|(k, _)| k == "version")
        .map(|(_, v)| v);
    Ok((media_type, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases of Prometheus 3.16's `TestAcceptHeader` (scrape/scrape_test.go), verbatim.
    #[test]
    fn accept_header_is_prometheus_byte_for_byte() {
        use ScrapeProtocol::*;
        let cases: &[(&[ScrapeProtocol], EscapingScheme, &str)] = &[
            (
                DEFAULT_SCRAPE_PROTOCOLS,
                EscapingScheme::Underscores,
                "application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.7,application/openmetrics-text;version=0.0.1;q=0.6,text/plain;version=1.0.0;escaping=underscores;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3",
            ),
            (
                DEFAULT_PROTO_FIRST_SCRAPE_PROTOCOLS,
                EscapingScheme::Dots,
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;escaping=dots;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=dots;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            ),
            (
                DEFAULT_SCRAPE_PROTOCOLS,
                EscapingScheme::AllowUtf8,
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.7,application/openmetrics-text;version=0.0.1;q=0.6,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3",
            ),
            (
                DEFAULT_PROTO_FIRST_SCRAPE_PROTOCOLS,
                EscapingScheme::AllowUtf8,
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
            ),
            (
                &[OpenMetricsText2_0_0, OpenMetricsText1_0_0],
                EscapingScheme::Underscores,
                "application/openmetrics-text;version=2.0.0;escaping=underscores;q=0.7,application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,*/*;q=0.5",
            ),
            (
                &[OpenMetricsText2_0_0],
                EscapingScheme::AllowUtf8,
                "application/openmetrics-text;version=2.0.0;escaping=allow-utf-8;q=0.7,*/*;q=0.6",
            ),
        ];
        for (protocols, scheme, want) in cases {
            assert_eq!(
                accept_header(protocols, *scheme),
                *want,
                "{protocols:?} {scheme:?}"
            );
        }
        // The values escaping takes.
        let values = [
            EscapingScheme::AllowUtf8,
            EscapingScheme::Underscores,
            EscapingScheme::Dots,
            EscapingScheme::Values,
        ]
        .map(|s| accept_header(&[PrometheusText1_0_0], s));
        assert_eq!(
            values,
            [
                "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.7,*/*;q=0.6",
                "text/plain;version=1.0.0;escaping=underscores;q=0.7,*/*;q=0.6",
                "text/plain;version=1.0.0;escaping=dots;q=0.7,*/*;q=0.6",
                "text/plain;version=1.0.0;escaping=values;q=0.7,*/*;q=0.6",
            ]
        );
    }

    #[test]
    fn defaults_depend_on_native_histograms() {
        assert_eq!(default_scrape_protocols(false), DEFAULT_SCRAPE_PROTOCOLS);
        assert_eq!(
            default_scrape_protocols(true)[0],
            ScrapeProtocol::PrometheusProto
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_all() {
        for p in ScrapeProtocol::ALL {
            assert_eq!(ScrapeProtocol::from_name(p.name()), Some(p));
        }
        assert_eq!(ScrapeProtocol::from_name("prometheustext0.0.4"), None);
        assert_eq!(
            ScrapeProtocol::unknown_message("Foo"),
            "unknown scrape protocol Foo, supported: [OpenMetricsText0.0.1 OpenMetricsText1.0.0 OpenMetricsText2.0.0 PrometheusProto PrometheusText0.0.4 PrometheusText1.0.0]"
        );
        assert_eq!(
            ScrapeProtocol::OpenMetricsText1_0_0.media_type(),
            "application/openmetrics-text"
        );
    }

    #[test]
    fn content_type_selects_the_parser_as_prometheus() {
        let ok = [
            (
                "text/plain; version=0.0.4; charset=utf-8",
                Format::Prometheus,
            ),
            (
                "text/plain; version=1.0.0; escaping=allow-utf-8",
                Format::Prometheus,
            ),
            ("TEXT/PLAIN", Format::Prometheus),
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                Format::OpenMetrics,
            ),
            (
                "application/openmetrics-text;version=0.0.1",
                Format::OpenMetrics,
            ),
            ("text/plain; version=0.0.4;", Format::Prometheus),
            ("text/plain; a=1; a=1", Format::Prometheus),
        ];
        for (ct, want) in ok {
            assert_eq!(format_for(Some(ct), None), Ok(want), "{ct}");
        }
        let err = |ct: Option<&str>| format_for(ct, None).unwrap_err().0;
        assert_eq!(
            err(None),
            "non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target"
        );
        assert_eq!(err(Some("")), err(None));
        assert_eq!(
            err(Some("application/json")),
            "received unsupported Content-Type \"application/json\" and no fallback_scrape_protocol specified for target"
        );
        assert_eq!(
            err(Some("text/plain; a=1; a=2")),
            "cannot parse Content-Type \"text/plain; a=1; a=2\" and no fallback_scrape_protocol for target\nmime: duplicate parameter name"
        );
        assert_eq!(
            err(Some("text/")),
            "cannot parse Content-Type \"text/\" and no fallback_scrape_protocol for target\nmime: expected token after slash"
        );
        assert_eq!(
            err(Some("text/plain; version")),
            "cannot parse Content-Type \"text/plain; version\" and no fallback_scrape_protocol for target\nmime: invalid media parameter"
        );
        assert_eq!(
            err(Some("application/openmetrics-text; version=2.0.0")),
            "received OpenMetrics 2.0 Content-Type \"application/openmetrics-text; version=2.0.0\", but the openmetrics2 feature flag is not enabled and no fallback_scrape_protocol specified for target"
        );
        // Protobuf whatever its parameters, as Prometheus's switch on the media type alone.
        for ct in [
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            "application/vnd.google.protobuf",
            "Application/Vnd.Google.Protobuf; encoding=text",
        ] {
            assert_eq!(format_for(Some(ct), None), Ok(Format::Protobuf), "{ct}");
        }
        // The fallback applies wherever Prometheus applies it, and only there.
        let om = Some(ScrapeProtocol::OpenMetricsText1_0_0);
        for ct in [
            None,
            Some("application/json"),
            Some("text/"),
            Some("application/openmetrics-text;version=2.0.0"),
        ] {
            assert_eq!(format_for(ct, om), Ok(Format::OpenMetrics), "{ct:?}");
        }
        assert_eq!(
            format_for(
                Some("application/json"),
                Some(ScrapeProtocol::PrometheusText0_0_4)
            ),
            Ok(Format::Prometheus)
        );
        assert_eq!(format_for(Some("text/plain"), om), Ok(Format::Prometheus));
        assert_eq!(
            format_for(None, Some(ScrapeProtocol::PrometheusProto)),
            Ok(Format::Protobuf)
        );
    }
}
