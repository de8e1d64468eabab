//! The delivery ledger: what happens to a record between a scrape and the bus.
//!
//! One pure policy for every sink: the rdkafka shell (`adapters::kafka`), the stdout sink and
//! the simulation's Kafka model run this ledger and only carry out what it says (produce
//! these records, retry this one at T) and feed it the broker's answers (acknowledged,
//! failed, attempt failed). It owns every delivery count; nothing else counts deliveries.
//!
//! - **Admission**: a submission (one scrape's records, or one target's staleness markers) is
//!   admitted whole or rejected whole. It fits when the records and bytes in flight plus its
//!   own stay within [`LedgerConfig::queue_len_max`] and [`LedgerConfig::queue_bytes_max`];
//!   an empty queue takes any submission, so that one larger than the byte bound is still
//!   tried (the client then refuses what is truly too big). A rejected submission is counted
//!   in [`DeliveryCounts::rejected_samples`] and never produced: the records already queued
//!   keep their place (they are older; dropping them would make gaps in the middle of a
//!   series instead of at its newest end).
//! - **Settlement**: each admitted record ends exactly once, acknowledged
//!   ([`Ledger::acked`]) or failed for a [`FailReason`] ([`Ledger::failed`]); a second answer
//!   for a settled record is ignored. A failed *attempt* ([`Ledger::attempt_failed`]) is
//!   retried after [`LedgerConfig::retry_backoff`] until the record has waited
//!   [`LedgerConfig::message_timeout`] since its admission; then it fails as
//!   [`FailReason::TimedOut`]. (librdkafka retries inside the client and reports only the
//!   end, so the rdkafka shell never reports attempts; the simulation's broker does.)
//! - **Counts**: at every moment `admitted = delivered + failed + in flight`, in records and
//!   in samples; every sample ever submitted is admitted or rejected.
//! - **Spool**: a sink with a disk spool routes submissions through `crate::spool` instead
//!   of [`Ledger::submit`]; the spool admits with [`Ledger::fits`] and [`Ledger::admit`], so
//!   what it holds reaches the ledger (and its counts) only when it is replayed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::encode::Record;
use crate::time::Timestamp;

/// A record's number in its ledger: unique, increasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

/// The ledger's bounds and retry policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerConfig {
    /// Most records in flight (admitted, not settled).
    pub queue_len_max: usize,
    /// Most bytes (keys, headers, payloads) in flight.
    pub queue_bytes_max: usize,
    /// How long after its admission a record may still be retried.
    pub message_timeout: Duration,
    /// How long after a failed attempt a record is tried again.
    pub retry_backoff: Duration,
}

impl LedgerConfig {
    /// No bound and no retry: for sinks that settle every record at once (stdout).
    pub fn unbounded() -> LedgerConfig {
        LedgerConfig {
            queue_len_max: usize::MAX,
            queue_bytes_max: usize::MAX,
            message_timeout: Duration::ZERO,
            retry_backoff: Duration::ZERO,
        }
    }
}

/// Why an admitted record was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailReason {
    /// The client's own queue refused it (librdkafka's backstop behind the ledger's bound).
    ClientQueueFull,
    /// It waited for the broker longer than the message timeout.
    TimedOut,
    /// The broker or the client refused it for good (too large, not authorized, a write
    /// error of the stdout sink).
    Refused,
}

impl FailReason {
    /// Every reason, in the order of [`FailedSamples`]' fields.
    pub const ALL: [FailReason; 3] = [
        FailReason::ClientQueueFull,
        FailReason::TimedOut,
        FailReason::Refused,
    ];

    /// The reason's name on `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::ClientQueueFull => "client_queue_full",
            FailReason::TimedOut => "timed_out",
            FailReason::Refused => "refused",
        }
    }
}

/// Samples of admitted records that failed, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailedSamples {
    /// [`FailReason::ClientQueueFull`].
    pub client_queue_full: u64,
    /// [`FailReason::TimedOut`].
    pub timed_out: u64,
    /// [`FailReason::Refused`].
    pub refused: u64,
}

impl FailedSamples {
    /// The samples failed for `reason`.
    pub fn get(&self, reason: FailReason) -> u64 {
        match reason {
            FailReason::ClientQueueFull => self.client_queue_full,
            FailReason::TimedOut => self.timed_out,
            FailReason::Refused => self.refused,
        }
    }

    fn add(&mut self, reason: FailReason, samples: u64) {
        match reason {
            FailReason::ClientQueueFull => self.client_queue_full += samples,
            FailReason::TimedOut => self.timed_out += samples,
            FailReason::Refused => self.refused += samples,
        }
    }

    /// Every failed sample.
    pub fn total(&self) -> u64 {
        self.client_queue_full + self.timed_out + self.refused
    }
}

/// What a ledger has counted. Counters only grow; the `in_flight_*` gauges go up and down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Records admitted.
    pub admitted_records: u64,
    /// Samples admitted.
    pub admitted_samples: u64,
    /// Samples of submissions rejected whole because they did not fit.
    pub rejected_samples: u64,
    /// Records the broker acknowledged.
    pub delivered_records: u64,
    /// Samples the broker acknowledged.
    pub delivered_samples: u64,
    /// Admitted records that failed.
    pub failed_records: u64,
    /// Samples of admitted records that failed, by reason.
    pub failed_samples: FailedSamples,
    /// Records admitted and not settled.
    pub in_flight_records: u64,
    /// Samples admitted and not settled.
    pub in_flight_samples: u64,
    /// Bytes admitted and not settled.
    pub in_flight_bytes: u64,
    /// Failed attempts that were retried.
    pub retries: u64,
}

impl DeliveryCounts {
    /// Every sample handed to the ledger: admitted or rejected.
    pub fn emitted_samples(&self) -> u64 {
        self.admitted_samples + self.rejected_samples
    }

    /// Samples that will never be delivered: rejected, or admitted and failed.
    pub fn not_delivered_samples(&self) -> u64 {
        self.rejected_samples + self.failed_samples.total()
    }
}

/// One admitted record to hand to the broker, with the id its answer must carry.
#[derive(Debug, PartialEq)]
pub struct Produce {
    /// The record's id in the ledger.
    pub id: RecordId,
    /// The record.
    pub record: Record,
}

/// The ledger's answer to a submission.
#[derive(Debug, PartialEq)]
#[must_use]
pub enum Admission {
    /// Admitted whole: produce each record, in this order.
    Admitted(Vec<Produce>),
    /// Rejected whole (the queue is full); counted, nothing to produce.
    Rejected {
        /// Records refused.
        records: usize,
        /// Samples refused.
        samples: u64,
    },
}

/// The ledger's answer to a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Retry {
    /// Try the record again at this time.
    At(Timestamp),
    /// It has waited past the message timeout: settled as [`FailReason::TimedOut`].
    GaveUp,
}

/// A record in flight.
#[derive(Clone, Copy, Debug)]
struct Pending {
    samples: u64,
    size_bytes: u64,
    admitted_at: Timestamp,
}

/// The bytes a record takes in the queue: key, header names and values, payload.
pub fn size_bytes(record: &Record) -> usize {
    record.key.len()
        + record.payload.len()
        + record
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Admission, the bounded queue, settlement and the counts; see the module documentation.
#[derive(Debug)]
pub struct Ledger {
    config: LedgerConfig,
    next_id: u64,
    pending: BTreeMap<RecordId, Pending>,
    counts: DeliveryCounts,
}

impl Ledger {
    /// An empty ledger.
    pub fn new(config: LedgerConfig) -> Ledger {
        Ledger {
            config,
            next_id: 1,
            pending: BTreeMap::new(),
            counts: DeliveryCounts::default(),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    /// Whether a submission of `records` records and `bytes` bytes (as [`size_bytes`]
    /// measures them) would be admitted now.
    pub fn fits(&self, records: usize, bytes: u64) -> bool {
        let c = &self.counts;
        self.pending.is_empty()
            || (c.in_flight_records.saturating_add(records as u64)
                <= self.config.queue_len_max as u64
                && c.in_flight_bytes.saturating_add(bytes) <= self.config.queue_bytes_max as u64)
    }

    /// Admits or rejects `records` (whole) at time `now`.
    pub fn submit(&mut self, now: Timestamp, records: Vec<Record>) -> Admission {
        let samples: u64 = records.iter().map(|r| r.samples as u64).sum();
        let bytes: usize = records.iter().map(size_bytes).sum();
        if !self.fits(records.len(), bytes as u64) {
            self.counts.rejected_samples += samples;
            return Admission::Rejected {
                records: records.len(),
                samples,
            };
        }
        Admission::Admitted(self.admit(now, records))
    }

    /// Admits `records` at time `now` without checking the bounds: for a caller that checked
    /// [`Ledger::fits`] itself (the spool's replay, `crate::spool`).
    pub fn admit(&mut self, now: Timestamp, records: Vec<Record>) -> Vec<Produce> {
        records
            .into_iter()
            .map(|record| {
                let id = RecordId(self.next_id);
                self.next_id += 1;
                let p = Pending {
                    samples: record.samples as u64,
                    size_bytes: size_bytes(&record) as u64,
                    admitted_at: now,
                };
                self.pending.insert(id, p);
                self.counts.admitted_records += 1;
                self.counts.admitted_samples += p.samples;
                self.counts.in_flight_records += 1;
                self.counts.in_flight_samples += p.samples;
                self.counts.in_flight_bytes += p.size_bytes;
                Produce { id, record }
            })
            .collect()
    }

    /// The broker acknowledged record `id`; `false` if it was not in flight (answer ignored).
    pub fn acked(&mut self, id: RecordId) -> bool {
        let Some(p) = self.settle(id) else {
            return false;
        };
        self.counts.delivered_records += 1;
        self.counts.delivered_samples += p.samples;
        true
    }

    /// Record `id` failed for good; `false` if it was not in flight (answer ignored).
    pub fn failed(&mut self, id: RecordId, reason: FailReason) -> bool {
        let Some(p) = self.settle(id) else {
            return false;
        };
        self.counts.failed_records += 1;
        self.counts.failed_samples.add(reason, p.samples);
        true
    }

    /// One attempt to deliver record `id` failed at `now`: when to retry, or that it timed
    /// out (then it is settled). `None` if it was not in flight.
    pub fn attempt_failed(&mut self, now: Timestamp, id: RecordId) -> Option<Retry> {
        let p = *self.pending.get(&id)?;
        if now.since(p.admitted_at) > self.config.message_timeout {
            self.failed(id, FailReason::TimedOut);
            return Some(Retry::GaveUp);
        }
        self.counts.retries += 1;
        Some(Retry::At(now + self.config.retry_backoff))
    }

    /// Everything counted so far.
    pub fn counts(&self) -> DeliveryCounts {
        self.counts
    }

    /// Whether no record is in flight.
    pub fn is_settled(&self) -> bool {
        self.pending.is_empty()
    }

    fn settle(&mut self, id: RecordId) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        self.counts.in_flight_records -= 1;
        self.counts.in_flight_samples -= p.samples;
        self.counts.in_flight_bytes -= p.size_bytes;
        Some(p)
    }
}
