//! `make bench`: a sweep over 1,000 tagged source snapshots, one
//! destination, against an in-memory EC2 answering each call after 10 ms.
//! Takes no arguments (the `--bench` that `cargo bench` passes is ignored).

use snapshot_copier::config::Config;
use snapshot_copier::copier::{Copier, Settings};
use snapshot_copier::testing::InMemoryRegions;
use std::time::{Duration, Instant};

const SOURCES: usize = 1000;
const CONCURRENCY: usize = 16;
const LATENCY: Duration = Duration::from_millis(10);

#[tokio::main]
async fn main() {
    let ec2 = InMemoryRegions::default();
    for i in 0..SOURCES {
        ec2.source(
            "us-east-1",
            &format!("vol-{i:017x}"),
            &[("dr:copy-to", "us-west-2")],
        );
    }
    let ec2 = ec2.with_latency(LATENCY);
    let copier = Copier::new(
        ec2.clone(),
        Settings {
            source_region: "us-east-1".into(),
            // The limit is not what this measures.
            max_concurrent_copies: SOURCES,
            concurrency: CONCURRENCY,
            ..Config::default().copier
        },
    );
    let start = Instant::now();
    let summary = copier.sweep().await;
    let elapsed = start.elapsed();
    assert_eq!(summary.copied.len(), SOURCES, "{:?}", summary.errors);
    // One CopySnapshot per source, one listing of the sources, one of the
    // destination's copies, one count of its pending copies.
    let minimum = SOURCES + 3;
    let floor = minimum as f64 * LATENCY.as_secs_f64() * 1000.0 / CONCURRENCY as f64;
    let ms = elapsed.as_secs_f64() * 1000.0;
    println!(
        "| sweep of {SOURCES} sources to one region, {} ms per call, {CONCURRENCY} in flight | {ms:.0} ms |",
        LATENCY.as_millis()
    );
    println!("| EC2 calls made (minimum {minimum}) | {} |", ec2.calls());
    println!(
        "| floor: minimum calls x latency / concurrency | {floor:.0} ms ({:.2}x; target within 2x) |",
        ms / floor
    );
}
