//! `make bench`: archive and digest 100,000 slow_log rows from a local
//! MariaDB (Debian) into moto S3, through the real MySQL and S3 adapters.
//! Prints rows per second and this process's peak RSS.

use rds_log_rotator::log::Log;
use rds_log_rotator::mysql::MySqlDb;
use rds_log_rotator::rotator::{Rotator, Settings};
use rds_log_rotator::s3::S3Store;
use std::time::Instant;
use suite_tests::mariadb::{MariaDb, PASSWORD, USER};
use suite_tests::moto::Moto;

const ROWS: usize = 100_000;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

#[tokio::main]
async fn main() {
    let db = MariaDb::start();
    // Statements of a few shapes, so the digest has fingerprints to rank.
    let mut sql = String::with_capacity(ROWS * 60);
    for i in 0..ROWS {
        sql.push_str(&match i % 4 {
            0 => format!("SELECT {i} AS id;\n"),
            1 => format!(
                "SELECT 'customer-{i}' AS name FROM DUAL WHERE {i} IN ({i}, {}, 3);\n",
                i + 1
            ),
            2 => format!("SELECT /* report */ {i} * 2 AS doubled;\n"),
            _ => format!("DO {i};\n"),
        });
    }
    let started = Instant::now();
    db.sql(&sql);
    let generated = started.elapsed();
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = rds_log_rotator::s3::client(&sdk, true);
    s3.create_bucket()
        .bucket("bench")
        .send()
        .await
        .expect("bucket");
    let rotator = Rotator {
        store: S3Store {
            client: s3,
            bucket: "bench".into(),
        },
        settings: Settings {
            logs: vec![Log::Slow],
            ..Settings::default()
        },
    };
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(db.port)
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .prefer_socket(false);
    let mut conn = MySqlDb {
        conn: mysql_async::Conn::new(opts).await.expect("connects"),
    };
    let baseline = peak_rss_mb();
    let started = Instant::now();
    let report = rotator
        .run_target(&mut conn, "bench-db", false, "2026-11-22 00:00:00")
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    assert!(!report.failed(), "{report:?}");
    let rows = report.logs[0].archived_rows;
    assert!(rows >= ROWS as u64, "{report:?}");
    println!(
        "| slow_log rows archived, digested and rotated (generated in {:.1} s) | {rows} |",
        generated.as_secs_f64()
    );
    println!("| parts written | {} |", report.logs[0].archives.len());
    println!("| time | {elapsed:.2} s |");
    println!("| rows per second | {:.0} |", rows as f64 / elapsed);
    println!(
        "| peak RSS of the archiving process (VmHWM; {baseline:.1} MB before the run) | {:.1} MB |",
        peak_rss_mb()
    );
    println!(
        "| statements in the digest's top {} (by total time) | {} |",
        rotator.settings.top_n,
        report.top_queries.len()
    );
}
