//! Simulated exporters: turmoil hosts serving `/t/<target>` over HTTP with hyper, whose
//! series come and go with time, and which can be made to fail (flap).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::trace::{Seen, Trace};

/// The port every simulated exporter listens on.
pub const PORT: u16 = 9100;

/// How many series each target serves at most; the upper half come and go.
pub const SERIES_PER_TARGET: u32 = 8;

/// Which series target `target` serves at simulated second `t_s`.
pub fn series_at(target: u32, t_s: i64) -> impl Iterator<Item = u32> {
    // Every 90 s the optional half of the series changes; deterministic in (target, time).
    let epoch = (t_s / 90) as u32;
    (0..SERIES_PER_TARGET).filter(move |j| {
        *j < SERIES_PER_TARGET / 2 || (epoch.wrapping_add(target).wrapping_add(*j)) % 3 != 0
    })
}

/// The body target `target` serves at simulated millisecond `t_ms`.
pub fn body(target: u32, t_ms: i64) -> String {
    let mut out = String::with_capacity(64 * SERIES_PER_TARGET as usize);
    out.push_str("# TYPE sim_series gauge\n");
    for j in series_at(target, t_ms / 1000) {
        use std::fmt::Write;
        let _ = writeln!(
            out,
            "sim_series{{k=\"{j}\"}} {}",
            (t_ms / 1000) % 1000 + i64::from(j)
        );
    }
    out
}

/// Exporter faults, set by the fault schedule.
#[derive(Default)]
pub struct ExporterFaults {
    /// Targets answering 503 now.
    pub failing: Mutex<BTreeSet<u32>>,
}

/// Serves every target on this host until the host is crashed.
pub async fn serve(
    trace: Arc<Trace>,
    faults: Arc<ExporterFaults>,
    now_ms: fn() -> i64,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    loop {
        let (stream, peer) = listener.accept().await?;
        let scraper = turmoil::reverse_lookup(peer.ip()).unwrap_or_else(|| peer.ip().to_string());
        let trace = trace.clone();
        let faults = faults.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let target: Option<u32> = req
                    .uri()
                    .path()
                    .strip_prefix("/t/")
                    .and_then(|t| t.parse().ok());
                let now = now_ms();
                let response = match target {
                    Some(target) => {
                        let ok = !faults
                            .failing
                            .lock()
                            .expect("faults lock")
                            .contains(&target);
                        trace.push(
                            now,
                            Seen::Scrape {
                                target,
                                scraper: scraper.clone(),
                                ok,
                            },
                        );
                        if ok {
                            Response::builder()
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(body(target, now))))
                        } else {
                            Response::builder()
                                .status(503)
                                .body(Full::new(Bytes::from_static(b"flapping\n")))
                        }
                    }
                    None => Response::builder()
                        .status(404)
                        .body(Full::new(Bytes::new())),
                };
                async move { Ok::<_, Infallible>(response.expect("valid response")) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
