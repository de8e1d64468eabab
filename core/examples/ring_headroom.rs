//! Measures how much headroom the ownership bounds of `tests/ownership.rs` have: over many
//! random member sets (and random targets), the movement ratio on one join/leave divided by
//! `min(1, R/N)`, and the busiest member's load divided by the mean (10k targets, 10 members).
//!
//! Run: `cargo run --release -p scrapepool-core --example ring_headroom [trials]`.
//!
//! Measured (1000 trials per row, seed fixed in `main`), movement / min(1, R/N):
//!
//! ```text
//! R=1 N=2   mean=1.0001 min=0.9588 p99=1.0240 max=1.0378 outside[0.9,1.1]=0
//! R=1 N=5   mean=1.0006 min=0.9400 p99=1.0460 max=1.0570 outside=0
//! R=1 N=10  mean=1.0016 min=0.9090 p99=1.0710 max=1.0990 outside=0
//! R=1 N=12  mean=1.0019 min=0.8844 p99=1.0776 max=1.1100 outside=3
//! R=1 N=20  mean=0.9984 min=0.8520 p99=1.1060 max=1.1360 outside=25
//! R=2 N=10  mean=1.0001 min=0.9400 p99=1.0465 max=1.0580 outside=0
//! R=3 N=10  mean=0.9996 min=0.9543 p99=1.0340 max=1.0503 outside=0
//! busiest/mean, 10 members: R=1 mean=1.0493 p99=1.0960 max=1.1380 (>1.1: 5 of 1000)
//!                           R=2 mean=1.0326 p99=1.0620 max=1.0745 (>1.1: 0)
//!                           R=3 mean=1.0248 p99=1.0480 max=1.0657 (>1.1: 0)
//! ```

use scrapepool_core::ring::{key_hash, Ring};

/// splitmix64: a tiny seeded generator, so the measurement is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

const TARGETS: usize = 10_000;

fn summary(label: &str, mut xs: Vec<f64>, limit_lo: f64, limit_hi: f64) {
    xs.sort_by(f64::total_cmp);
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let pct = |p: f64| xs[((xs.len() - 1) as f64 * p).round() as usize];
    let out = xs.iter().filter(|&&x| x > limit_hi || x < limit_lo).count();
    println!(
        "{label:<16} trials={:<5} mean={mean:.4} min={:.4} p1={:.4} p99={:.4} max={:.4} outside[{limit_lo},{limit_hi}]={out}",
        xs.len(),
        xs[0],
        pct(0.01),
        pct(0.99),
        xs[xs.len() - 1],
    );
}

fn main() {
    let trials: usize = std::env::args()
        .nth(1)
        .map_or(1000, |s| s.parse().expect("trials: a number"));
    let mut rng = Rng(0x5ca1_ab1e);
    let ids = |rng: &mut Rng, n: usize| -> Vec<String> {
        let mut v: Vec<String> = (0..n)
            .map(|_| format!("scraper-{:x}", rng.next()))
            .collect();
        v.sort();
        v.dedup();
        v
    };
    println!("movement ratio / min(1, R/N) on one join (= the reverse leave), {TARGETS} targets:");
    for r in 1..=3usize {
        for n in [2usize, 3, 5, 8, 10, 12, 16, 20] {
            let mut ratios = Vec::with_capacity(trials);
            for _ in 0..trials {
                let b_ids = ids(&mut rng, n);
                let x = (rng.next() % n as u64) as usize;
                let a_ids: Vec<&str> = b_ids
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != x)
                    .map(|(_, m)| m.as_str())
                    .collect();
                let seed = rng.next();
                let hashes: Vec<u64> = (0..TARGETS as u64)
                    .map(|i| key_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
                    .collect();
                let a = Ring::new(a_ids, r);
                let b = Ring::new(b_ids.iter().map(String::as_str), r);
                let moved = a.assign(&hashes).moved(&b.assign(&hashes)).len();
                let expected = (r as f64 / n as f64).min(1.0);
                ratios.push(moved as f64 / TARGETS as f64 / expected);
            }
            summary(&format!("R={r} N={n}"), ratios, 0.9, 1.1);
        }
    }
    println!("busiest / mean load, {TARGETS} targets on 10 members:");
    for r in 1..=3usize {
        let mut ratios = Vec::with_capacity(trials);
        for _ in 0..trials {
            let members = ids(&mut rng, 10);
            let seed = rng.next();
            let hashes: Vec<u64> = (0..TARGETS as u64)
                .map(|i| key_hash(&[seed.to_le_bytes(), i.to_le_bytes()].concat()))
                .collect();
            let ring = Ring::new(members.iter().map(String::as_str), r);
            let load = ring.assign(&hashes).load();
            let mean = (r * TARGETS) as f64 / ring.len() as f64;
            ratios.push(*load.iter().max().unwrap() as f64 / mean);
        }
        summary(&format!("R={r} N=10"), ratios, 0.0, 1.1);
    }
}
