use super::*;
use crate::testing::{InMemoryArchive, InMemoryServer};
use flate2::read::GzDecoder;
use std::collections::HashMap;
use std::io::Read;

fn rotator() -> Rotator<InMemoryArchive> {
    Rotator {
        store: InMemoryArchive::default(),
        settings: Settings {
            part_rows: 3,
            ..Settings::default()
        },
    }
}

/// As [`rotator`], for the slow log only.
fn slow_log_rotator() -> Rotator<InMemoryArchive> {
    let rotator = rotator();
    Rotator {
        settings: Settings {
            logs: vec![Log::Slow],
            ..rotator.settings
        },
        ..rotator
    }
}

/// A scheduled run (not a dry run) of `rotator` over `server`'s db1.
async fn run(
    rotator: &Rotator<InMemoryArchive>,
    server: &InMemoryServer,
    run_time: &str,
) -> TargetReport {
    rotator
        .run_target(&mut server.session(), "db1", false, run_time)
        .await
}

/// Each archive part whose key `keep` accepts, with its rows (gzip JSON
/// lines).
fn part_rows(
    store: &InMemoryArchive,
    keep: impl Fn(&str) -> bool,
) -> Vec<(String, Vec<serde_json::Value>)> {
    let objects = store.objects.lock().unwrap();
    objects
        .iter()
        .filter(|(key, _)| key.ends_with(".jsonl.gz") && keep(key))
        .map(|(key, body)| {
            let mut text = String::new();
            GzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
            let rows = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            (key.clone(), rows)
        })
        .collect()
}

/// Every archived row's sql (slow) or argument (general), counted.
fn archived(store: &InMemoryArchive, log: Log) -> HashMap<String, usize> {
    let field = if log == Log::Slow {
        "sql_text"
    } else {
        "argument"
    };
    let mut seen = HashMap::new();
    let folder = format!("/{}/", log.name());
    for (_, rows) in part_rows(store, |key| key.contains(&folder)) {
        for row in rows {
            *seen
                .entry(row[field].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    seen
}

fn queries(server: &InMemoryServer, round: u32, n: u32) -> Vec<String> {
    (0..n)
        .map(|i| {
            let sql = format!("select {i} /* round {round} */");
            server.log_query(
                &format!("2026-11-22 0{round}:00:{i:02}.000000"),
                &sql,
                "00:00:00.5",
            );
            sql
        })
        .collect()
}

fn exactly_once(store: &InMemoryArchive, issued: &[String]) {
    for log in Log::ALL {
        let seen = archived(store, log);
        for sql in issued {
            assert_eq!(seen.get(sql), Some(&1), "{log:?} {sql}: {seen:?}");
        }
        assert_eq!(seen.len(), issued.len(), "{log:?}: nothing else");
    }
}

#[tokio::test]
async fn over_many_rounds_every_row_is_archived_exactly_once() {
    let server = InMemoryServer::default();
    let rotator = rotator();
    let mut issued = Vec::new();
    for round in 1..=4 {
        issued.extend(queries(&server, round, 2 + round * 2));
        let report = run(&rotator, &server, &format!("2026-11-22 0{round}:30:00")).await;
        assert!(!report.failed(), "{report:?}");
        assert!(
            report
                .logs
                .iter()
                .all(|l| l.rotated && l.warnings.is_empty()),
            "{report:?}"
        );
        assert_eq!(report.logs[0].archived_rows, u64::from(2 + round * 2));
    }
    exactly_once(&rotator.store, &issued);
    let digest = rotator
        .store
        .keys()
        .into_iter()
        .find(|k| k.contains("digest"))
        .unwrap();
    assert!(
        digest.starts_with("rds-logs/slow/instance=db1/dt=2026-11-22/_20261122T"),
        "{digest}"
    );
    assert!(
        rotator
            .store
            .keys()
            .contains(&"rds-logs/general/instance=db1/_watermark.json".to_owned())
    );
}

#[tokio::test]
async fn an_s3_outage_prevents_rotation_and_the_next_run_archives_everything() {
    let server = InMemoryServer::default();
    let rotator = rotator();
    let mut issued = queries(&server, 1, 5);
    run(&rotator, &server, "2026-11-22 01:30:00").await;
    issued.extend(queries(&server, 2, 4));
    *rotator.store.failing.lock().unwrap() = true;
    let failed = run(&rotator, &server, "2026-11-22 02:30:00").await;
    assert!(failed.failed());
    assert!(failed.logs.iter().all(|l| !l.rotated), "{failed:?}");
    assert_eq!(
        server.inner.lock().unwrap().rotations,
        2,
        "only the first run rotated"
    );
    *rotator.store.failing.lock().unwrap() = false;
    let next = run(&rotator, &server, "2026-11-22 03:30:00").await;
    assert!(!next.failed(), "{next:?}");
    exactly_once(&rotator.store, &issued);
}

#[tokio::test]
async fn a_failure_between_parts_resumes_without_duplicates() {
    let server = InMemoryServer::default();
    let rotator = rotator();
    let mut issued = queries(&server, 1, 4);
    run(&rotator, &server, "2026-11-22 01:30:00").await;
    // 8 rows in the next backup: three parts. Fail after the first part and its watermark.
    issued.extend(queries(&server, 2, 8));
    server.rotate(Log::Slow);
    *rotator.store.puts_before_failing.lock().unwrap() = Some(2);
    let failed = run(&rotator, &server, "2026-11-22 02:30:00").await;
    let slow = &failed.logs[0];
    assert_eq!(slow.archived_rows, 3, "{failed:?}");
    assert!(!slow.rotated && slow.error.as_ref().unwrap().contains("not rotated"));
    *rotator.store.puts_before_failing.lock().unwrap() = None;
    let next = run(&rotator, &server, "2026-11-22 03:30:00").await;
    assert!(!next.failed(), "{next:?}");
    // The outside rotation of the slow log is reported, and nothing is lost twice.
    let seen = archived(&rotator.store, Log::Slow);
    for sql in &issued {
        assert_eq!(seen.get(sql), Some(&1), "{sql}");
    }
}

#[tokio::test]
async fn an_outside_rotation_is_a_warning_and_its_rows_are_archived() {
    let server = InMemoryServer::default();
    let rotator = rotator();
    let mut issued = queries(&server, 1, 3);
    run(&rotator, &server, "2026-11-22 01:30:00").await;
    issued.extend(queries(&server, 2, 3));
    server.rotate(Log::Slow);
    server.rotate(Log::General);
    issued.extend(queries(&server, 3, 2));
    let report = run(&rotator, &server, "2026-11-22 03:30:00").await;
    assert!(!report.failed(), "{report:?}");
    for log in &report.logs {
        assert!(
            log.warnings
                .iter()
                .any(|w| w.contains("replaced outside the rotator")),
            "{log:?}"
        );
    }
    exactly_once(&rotator.store, &issued);

    // Rotated twice outside: the first backup is gone; the time gap says so.
    queries(&server, 4, 2);
    server.rotate(Log::Slow);
    issued = queries(&server, 8, 2);
    server.rotate(Log::Slow);
    let report = run(&rotator, &server, "2026-11-22 08:30:00").await;
    assert!(
        report.logs[0]
            .warnings
            .iter()
            .any(|w| w.starts_with("possible gap: the oldest row")),
        "{report:?}"
    );
    let seen = archived(&rotator.store, Log::Slow);
    assert!(issued.iter().all(|sql| seen.get(sql) == Some(&1)));
}

#[tokio::test]
async fn a_rotation_just_before_our_call_is_reported_as_a_gap() {
    let server = InMemoryServer::default();
    let rotator = rotator();
    queries(&server, 1, 3);
    run(&rotator, &server, "2026-11-22 01:30:00").await;
    // RDS rotates between the archive and our CALL: our CALL then drops
    // the backup RDS made, rows nobody read.
    queries(&server, 2, 4);
    server
        .inner
        .lock()
        .unwrap()
        .rotate_before
        .push(("rotate:slow".into(), Log::Slow));
    let report = run(&rotator, &server, "2026-11-22 02:30:00").await;
    let slow = &report.logs[0];
    let warning = slow
        .warnings
        .iter()
        .find(|w| w.starts_with("possible gap"))
        .unwrap_or_else(|| panic!("no gap reported: {report:?}"));
    assert!(
        warning.contains("between the archive and this rotator's CALL")
            && warning.contains("2026-11-22 02:00:00.000000")
            && warning.contains("at least 4 rows"),
        "{warning}"
    );
    assert!(report.logs[1].warnings.is_empty(), "{report:?}");
    // The next run archives what came after, without a warning.
    let issued = queries(&server, 3, 2);
    let next = run(&rotator, &server, "2026-11-22 03:30:00").await;
    assert!(!next.failed(), "{next:?}");
    let seen = archived(&rotator.store, Log::Slow);
    assert!(
        issued.iter().all(|sql| seen.get(sql) == Some(&1)),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_rotation_after_the_archive_is_archived_not_dropped() {
    let server = InMemoryServer::default();
    let rotator = rotator();
    let mut issued = queries(&server, 1, 3);
    run(&rotator, &server, "2026-11-22 01:30:00").await;
    issued.extend(queries(&server, 2, 4));
    // RDS rotates after the backup was archived and the live table counted.
    server
        .inner
        .lock()
        .unwrap()
        .rotate_before
        .push(("oldest:slow_log".into(), Log::Slow));
    let report = run(&rotator, &server, "2026-11-22 02:30:00").await;
    assert!(!report.failed(), "{report:?}");
    issued.extend(queries(&server, 3, 2));
    let next = run(&rotator, &server, "2026-11-22 03:30:00").await;
    assert!(!next.failed(), "{next:?}");
    let seen = archived(&rotator.store, Log::Slow);
    for sql in &issued {
        assert_eq!(seen.get(sql), Some(&1), "{sql}: {report:?}");
    }
}

/// Every archived part's key and the sql of its rows, slow log.
/// The slow log's parts, each with its rows' SQL.
fn parts(store: &InMemoryArchive) -> Vec<(String, Vec<String>)> {
    part_rows(store, |key| key.starts_with("rds-logs/slow/"))
        .into_iter()
        .map(|(key, rows)| {
            let sql = rows
                .iter()
                .map(|row| row["sql_text"].as_str().unwrap().to_owned())
                .collect();
            (key, sql)
        })
        .collect()
}

#[tokio::test]
async fn a_backup_replaced_under_a_resume_is_detected_before_anything_is_written() {
    let server = InMemoryServer::default();
    let rotator = slow_log_rotator();
    // Old backup: 6 rows; the first run archives one part (3 rows), then fails.
    let old = queries(&server, 1, 6);
    server.rotate(Log::Slow);
    *rotator.store.puts_before_failing.lock().unwrap() = Some(2);
    let failed = run(&rotator, &server, "2026-11-22 01:30:00").await;
    assert!(
        failed.failed() && failed.logs[0].archived_rows == 3,
        "{failed:?}"
    );
    *rotator.store.puts_before_failing.lock().unwrap() = None;
    // RDS rotates between the resumed run's first look at the backup and its read.
    let new = queries(&server, 2, 5);
    server
        .inner
        .lock()
        .unwrap()
        .rotate_before
        .push(("rows:slow_log_backup".into(), Log::Slow));
    let report = run(&rotator, &server, "2026-11-22 02:30:00").await;
    assert!(!report.failed(), "{report:?}");
    // Parts of a generation hold only that generation's rows.
    for (key, sqls) in parts(&rotator.store) {
        let round = if key.contains("T01") {
            "round 1"
        } else {
            "round 2"
        };
        assert!(
            sqls.iter().all(|sql| sql.contains(round)),
            "{key}: {sqls:?}"
        );
    }
    // The old backup's unarchived rows are reported, the new one archived from its start.
    let slow = &report.logs[0];
    assert!(
        slow.warnings
            .iter()
            .any(|w| w.contains("from row 4 of the previous backup")
                && w.contains("2026-11-22 01:00:00.000000")),
        "{report:?}"
    );
    let seen = archived(&rotator.store, Log::Slow);
    for sql in old.iter().take(3).chain(&new) {
        assert_eq!(seen.get(sql), Some(&1), "{sql}: {seen:?}");
    }
    assert_eq!(seen.len(), 8, "{seen:?}");
    // A run once more changes nothing.
    let again = run(&rotator, &server, "2026-11-22 02:40:00").await;
    assert!(
        !again.failed() && again.logs[0].archived_rows == 0,
        "{again:?}"
    );
    assert_eq!(archived(&rotator.store, Log::Slow), seen);
}

#[tokio::test]
async fn the_backup_is_read_once_however_many_parts() {
    let server = InMemoryServer::default();
    let rotator = slow_log_rotator();
    let issued = queries(&server, 1, 30);
    server.rotate(Log::Slow);
    let report = run(&rotator, &server, "2026-11-22 01:30:00").await;
    assert!(!report.failed(), "{report:?}");
    assert_eq!(report.logs[0].archives.len(), 10, "parts of 3 rows");
    let seen = archived(&rotator.store, Log::Slow);
    assert!(issued.iter().all(|sql| seen.get(sql) == Some(&1)));
    // 30 rows and the first row that names the backup: not a rescan per
    // part, nor a COUNT scan (the live table is empty here).
    let read = server.inner.lock().unwrap().rows_read;
    assert_eq!(read, 31, "rows walked by the server to archive 30");
    // Archived to its end: the next run looks at one row of it.
    let next = run(&rotator, &server, "2026-11-22 02:30:00").await;
    assert!(
        !next.failed() && next.logs[0].archived_rows == 0,
        "{next:?}"
    );
    let read = server.inner.lock().unwrap().rows_read;
    assert_eq!(read, 32, "one row of an archived backup");
}

#[tokio::test]
async fn a_second_run_skips_while_the_first_holds_the_lock() {
    let server = InMemoryServer::default();
    let rotator = rotator();
    let mut first = server.session();
    assert!(first.try_lock(LOCK_NAME).await.unwrap());
    let second = run(&rotator, &server, "2026-11-22 01:30:00").await;
    assert_eq!(
        second.skipped.as_deref(),
        Some("already running: another rotator run holds the lock")
    );
    assert!(rotator.store.keys().is_empty());
}

#[tokio::test]
async fn pre_checks_skip_with_the_reason_and_dry_runs_write_nothing() {
    let server = InMemoryServer::default();
    queries(&server, 1, 3);
    server.rotate(Log::Slow);
    let rotator = rotator();
    let dry = rotator
        .run_target(&mut server.session(), "db1", true, "2026-11-22 01:30:00")
        .await;
    assert_eq!(dry.logs[0].would_archive_rows, Some(3));
    assert!(
        dry.logs[1].reason.starts_with("dry run: would rotate"),
        "{dry:?}"
    );
    assert!(rotator.store.keys().is_empty());

    for (change, reason) in [
        (
            Box::new(|s: &mut ServerState| s.log_output = "FILE".into())
                as Box<dyn Fn(&mut ServerState)>,
            "log_output is \"FILE\"",
        ),
        (
            Box::new(|s: &mut ServerState| s.read_only = true),
            "read-only",
        ),
        (
            Box::new(|s: &mut ServerState| s.procedures.clear()),
            "procedure mysql.rds_rotate_slow_log does not exist",
        ),
        (
            Box::new(|s: &mut ServerState| s.slow_log_on = false),
            "slow_query_log is OFF",
        ),
    ] {
        let server = InMemoryServer::default();
        change(&mut server.inner.lock().unwrap().state);
        let report = run(&rotator, &server, "2026-11-22 01:30:00").await;
        assert!(
            report.logs[0].reason.contains(reason),
            "{reason}: {report:?}"
        );
        assert!(!report.logs[0].rotated);
    }
}
