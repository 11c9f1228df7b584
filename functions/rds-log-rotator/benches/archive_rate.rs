//! `make bench` (`cargo bench -p rds-log-rotator --bench archive_rate`): archive and digest slow_log rows from a local MariaDB
//! (Debian) into moto S3, through the real MySQL and S3 adapters. Prints
//! rows per second and this process's peak RSS.
//!
//! `archive_rate` runs 100,000 real statements (long_query_time=0) and
//! rotates them. `archive_rate --backup ROWS` writes ROWS rows of the same
//! four shapes straight into a table laid out like slow_log (one
//! INSERT ... SELECT from MariaDB's sequence engine, far faster than ROWS
//! statements) and renames it into place as mysql.slow_log_backup, as a
//! rotation leaves it: the rotator archives it before rotating, as it would
//! a backup RDS made.

use rds_log_rotator::aws::s3::S3Store;
use rds_log_rotator::log_table::Log;
use rds_log_rotator::mysql::MySqlDb;
use rds_log_rotator::rotator::{Rotator, Settings};
use std::time::Instant;
use suite_tests::mariadb::{MariaDb, PASSWORD, USER};
use suite_tests::moto::Moto;

const STATEMENTS: usize = 100_000;

/// The header of the table the rows printed belong to.
const HEADER: &str = "| slow_log rows | rows archived, digested, rotated | generated in | parts | time | rows per second | peak RSS (VmHWM) | digest top |\n|---|---|---|---|---|---|---|---|";

/// The statements' four shapes as SQL over the sequence's `seq`.
const SHAPES: &str = "CASE seq % 4 \
    WHEN 0 THEN CONCAT('SELECT ', seq, ' AS id') \
    WHEN 1 THEN CONCAT('SELECT ''customer-', seq, ''' AS name FROM DUAL WHERE ', seq, ' IN (', seq, ', ', seq + 1, ', 3)') \
    WHEN 2 THEN CONCAT('SELECT /* report */ ', seq, ' * 2 AS doubled') \
    ELSE CONCAT('DO ', seq) END";

/// `rows` slow_log rows, one microsecond apart, as mysql.slow_log_backup.
fn fill_backup(db: &MariaDb, rows: usize) {
    db.sql(&format!(
        "DROP TABLE IF EXISTS mysql.slow_log_fill;
         CREATE TABLE mysql.slow_log_fill LIKE mysql.slow_log;
         INSERT INTO mysql.slow_log_fill
           SELECT NOW(6) - INTERVAL ({rows} - seq) MICROSECOND, 'root[root] @ localhost []',
                  '00:00:00.000120', '00:00:00.000000', 1, 0, '', 0, 0, 1, {SHAPES}, 42, 0
           FROM mysql.seq_0_to_{last};
         DROP TABLE IF EXISTS mysql.slow_log_backup;
         RENAME TABLE mysql.slow_log_fill TO mysql.slow_log_backup;",
        last = rows - 1
    ));
}

fn statements(db: &MariaDb) {
    let mut sql = String::with_capacity(STATEMENTS * 60);
    for i in 0..STATEMENTS {
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
    db.sql(&sql);
}

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
    // `cargo bench` passes `--bench` to a harness-less bench: not ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let backup_rows = match args.as_slice() {
        [] => None,
        [flag, rows] if flag == "--backup" => Some(rows.parse::<usize>().expect("--backup ROWS")),
        [flag] if flag == "--header" => {
            println!("{HEADER}");
            return;
        }
        _ => panic!("usage: archive_rate [--header | --backup ROWS]"),
    };
    let db = MariaDb::start();
    let started = Instant::now();
    let (expected, how) = match backup_rows {
        Some(rows) => {
            fill_backup(&db, rows);
            (rows, format!("{rows} filled into slow_log_backup"))
        }
        None => {
            statements(&db);
            (STATEMENTS, format!("{STATEMENTS} statements, rotated"))
        }
    };
    let generated = started.elapsed();
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = rds_log_rotator::aws::s3::client(&sdk, true);
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
    assert!(rows >= expected as u64, "{report:?}");
    // One row of the table scripts/bench.sh writes (HEADER).
    println!(
        "| {how} | {rows} | {:.1} s | {} | {elapsed:.2} s | {:.0} | {:.1} MB ({baseline:.1} MB before) | {} |",
        generated.as_secs_f64(),
        report.logs[0].archives.len(),
        rows as f64 / elapsed,
        peak_rss_mb(),
        report.top_queries.len()
    );
}
