//! The rotator binary against Debian's MariaDB with table logging and RDS's
//! rotate procedures; archives in moto S3, the password in moto Secrets
//! Manager.

mod common;

use common::{BUCKET, INSTANCE, invoke, log_report, scheduled, start};
use rds_log_rotator::FUNCTION_NAME;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use suite_tests::events::sample;

#[tokio::test(flavor = "multi_thread")]
async fn over_many_rounds_every_row_lands_in_the_archive_exactly_once() {
    let stack = start().await;
    let rotator = stack.rotator(1, &[]).await;
    let mut issued = Vec::new();
    for round in 1..=4 {
        issued.extend(stack.markers(round, 25));
        let answer = invoke(&rotator, scheduled()).await.unwrap();
        for log in ["slow", "general"] {
            let report = log_report(&answer, log);
            assert_eq!(report["rotated"], true, "{answer}");
            assert_eq!(report["warnings"], json!([]), "{answer}");
            assert!(report["archivedRows"].as_u64().unwrap() >= 25, "{answer}");
            let part = report["archives"][0].as_str().unwrap();
            assert!(
                part.starts_with(&format!("rds-logs/{log}/instance={INSTANCE}/dt="))
                    && part.ends_with("-00000.jsonl.gz"),
                "{part}"
            );
        }
        // The backup now holds exactly what was just archived.
        let backup = stack.db.sql("SELECT COUNT(*) FROM mysql.slow_log_backup");
        assert_eq!(
            backup.trim().parse::<u64>().unwrap(),
            log_report(&answer, "slow")["archivedRows"]
                .as_u64()
                .unwrap()
        );
    }
    stack.assert_archived_exactly_once(&issued).await;

    // The digest of the last run, and its watermark, next to the archive.
    let answer = invoke(&rotator, scheduled()).await.unwrap();
    let digest_key = answer["targets"][0]["digest"].as_str().unwrap();
    assert!(
        digest_key.starts_with(&format!("rds-logs/slow/instance={INSTANCE}/dt=")),
        "{digest_key}"
    );
    let digest: Value = serde_json::from_slice(&stack.get(digest_key).await.unwrap()).unwrap();
    assert!(digest["top"].as_array().unwrap().len() <= 20);
    let watermark: Value = serde_json::from_slice(
        &stack
            .get(&format!(
                "rds-logs/slow/instance={INSTANCE}/_watermark.json"
            ))
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(watermark["lastTime"].as_str().is_some(), "{watermark}");
    assert_eq!(
        watermark["generation"]["rows"], watermark["generation"]["archivedRows"],
        "{watermark}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_digest_ranks_the_worst_statements() {
    let stack = start().await;
    stack.db.sql(
        "SELECT SLEEP(0.3) FROM DUAL WHERE 1 IN (1, 2, 3);
         SELECT SLEEP(0.2) FROM DUAL WHERE 1 IN (1);
         SELECT 'quick' AS q;",
    );
    let rotator = stack.rotator(1, &[("LOGS", "slow")]).await;
    let answer = invoke(&rotator, scheduled()).await.unwrap();
    let top = &answer["targets"][0]["topQueries"][0];
    assert_eq!(
        top["fingerprint"], "select sleep(?) from dual where ? in (?+)",
        "{answer}"
    );
    assert_eq!(top["count"], 2);
    assert!(top["totalTimeSecs"].as_f64().unwrap() >= 0.5, "{top}");
    assert!(top["maxTimeSecs"].as_f64().unwrap() >= 0.3, "{top}");
    // Samples (statements with their literals) stay in the S3 digest.
    assert_eq!(top.get("sample"), None, "{top}");
    let digest_key = answer["targets"][0]["digest"].as_str().unwrap();
    let digest: Value = serde_json::from_slice(&stack.get(digest_key).await.unwrap()).unwrap();
    assert!(
        digest["top"][0]["sample"]
            .as_str()
            .unwrap()
            .contains("SLEEP(0.3)"),
        "{digest}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_sql_literal_appears_in_the_function_output() {
    let stack = start().await;
    stack.db.sql(
        "SELECT SLEEP(0.2) FROM DUAL WHERE 'jane.secret@example.com' <> 'x';
         SELECT SLEEP(0.1) FROM DUAL WHERE 'other' <> 'x';",
    );
    let rotator = stack
        .rotator(1, &[("LOGS", "slow"), ("AWS_LAMBDA_LOG_LEVEL", "DEBUG")])
        .await;
    let answer = invoke(&rotator, scheduled()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = rotator.logs().join("\n");
    assert!(
        logs.contains("select sleep(?) from dual where ? <> ?"),
        "the logs carry the fingerprint: {logs}"
    );
    for (output, text) in [("logs", logs), ("response", answer.to_string())] {
        assert!(
            !text.contains("jane.secret@example.com"),
            "the address appears in the {output}: {text}"
        );
    }
    let digest_key = answer["targets"][0]["digest"].as_str().unwrap();
    let digest = String::from_utf8(stack.get(digest_key).await.unwrap()).unwrap();
    assert!(
        digest.contains("jane.secret@example.com"),
        "the S3 digest keeps the sample: {digest}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_at_once_one_skips_and_nothing_is_lost_or_doubled() {
    let stack = start().await;
    // S3 answers slowly, so the first run holds the lock while the second starts.
    let moto = stack.moto.endpoint();
    let (slow_s3, _task) = suite_tests::http::serve(0, move |request| {
        let moto = moto.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            suite_tests::http::forward(&request, &moto).await
        }
    })
    .await
    .unwrap();
    let slow_s3 = format!("http://{slow_s3}");
    let rotator = stack.rotator(2, &[("AWS_ENDPOINT_URL_S3", &slow_s3)]).await;
    let mut issued = stack.markers(1, 20);
    let (a, b) = tokio::join!(invoke(&rotator, scheduled()), invoke(&rotator, scheduled()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let skipped: Vec<&Value> = [&a, &b]
        .into_iter()
        .filter(|r| r["targets"][0]["skipped"].is_string())
        .collect();
    assert_eq!(skipped.len(), 1, "exactly one run skips: {a}\n{b}");
    assert!(
        skipped[0]["targets"][0]["skipped"]
            .as_str()
            .unwrap()
            .contains("already running")
    );
    issued.extend(stack.markers(2, 20));
    invoke(&rotator, scheduled()).await.unwrap();
    stack.assert_archived_exactly_once(&issued).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_outage_rotates_nothing_and_the_next_run_archives_everything() {
    let stack = start().await;
    let healthy = stack.rotator(1, &[]).await;
    let mut issued = stack.markers(1, 10);
    invoke(&healthy, scheduled()).await.unwrap();
    issued.extend(stack.markers(2, 10));
    let backup_before = stack.db.sql("SELECT COUNT(*) FROM mysql.slow_log_backup");

    let (failing, _task) = suite_tests::http::serve(0, |_| async {
        suite_tests::http::reply(
            500,
            "<Error><Code>InternalError</Code><Message>down</Message></Error>",
        )
    })
    .await
    .unwrap();
    let failing = format!("http://{failing}");
    let broken = stack.rotator(1, &[("AWS_ENDPOINT_URL_S3", &failing)]).await;
    let error = invoke(&broken, scheduled()).await.unwrap_err();
    assert_eq!(error["errorType"], "RotationFailed", "{error}");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not rotated"),
        "{error}"
    );
    // Nothing rotated: the backup is the same, the new rows are still live.
    assert_eq!(
        stack.db.sql("SELECT COUNT(*) FROM mysql.slow_log_backup"),
        backup_before
    );
    let live = stack
        .db
        .sql("SELECT COUNT(*) FROM mysql.slow_log WHERE sql_text LIKE 'SELECT ''marker-2-%'");
    assert_eq!(live.trim(), "10");

    invoke(&healthy, scheduled()).await.unwrap();
    stack.assert_archived_exactly_once(&issued).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_failing_between_parts_resumes_where_it_stopped() {
    let stack = start().await;
    // S3 refuses every second part: the first run archives one part of the
    // new backup, then fails.
    let moto = stack.moto.endpoint();
    let (failing, _task) = suite_tests::http::serve(0, move |request| {
        let moto = moto.clone();
        async move {
            if request.method == "PUT" && request.path_and_query.contains("-00001.jsonl.gz") {
                suite_tests::http::reply(
                    500,
                    "<Error><Code>InternalError</Code><Message>down</Message></Error>",
                )
            } else {
                suite_tests::http::forward(&request, &moto).await
            }
        }
    })
    .await
    .unwrap();
    let failing = format!("http://{failing}");
    let settings = [("PART_ROWS", "10"), ("LOGS", "slow")];
    let broken = stack
        .rotator(
            1,
            &[settings[0], settings[1], ("AWS_ENDPOINT_URL_S3", &failing)],
        )
        .await;
    let issued = stack.markers(1, 25);
    invoke(&broken, scheduled()).await.unwrap_err();
    assert_eq!(stack.archive().await["slow"].len(), 10, "one part archived");
    // The next run reads the backup once more, from the 11th row on.
    let healthy = stack.rotator(1, &settings).await;
    let answer = invoke(&healthy, scheduled()).await.unwrap();
    let slow = log_report(&answer, "slow");
    assert!(
        slow["archivedRows"].as_u64().unwrap() >= 15,
        "the rest of the backup, then the next one: {answer}"
    );
    let archive = stack.archive().await;
    for statement in &issued {
        let copies = archive["slow"]
            .iter()
            .filter(|row| row["sql_text"] == statement.as_str())
            .count();
        assert_eq!(copies, 1, "{statement}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outside_rotation_is_a_gap_warning_and_loses_nothing() {
    let stack = start().await;
    let rotator = stack.rotator(1, &[]).await;
    let mut issued = stack.markers(1, 10);
    invoke(&rotator, scheduled()).await.unwrap();
    issued.extend(stack.markers(2, 10));
    // RDS rotating on its own, or someone calling the procedure by hand.
    stack
        .db
        .sql("CALL mysql.rds_rotate_slow_log(); CALL mysql.rds_rotate_general_log();");
    issued.extend(stack.markers(3, 10));
    let answer = invoke(&rotator, scheduled()).await.unwrap();
    for log in ["slow", "general"] {
        let report = log_report(&answer, log);
        assert!(
            report["warnings"][0]
                .as_str()
                .unwrap()
                .starts_with("possible gap: mysql."),
            "{answer}"
        );
        assert_eq!(report["rotated"], true);
    }
    stack.assert_archived_exactly_once(&issued).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_checks_skip_with_a_clear_reason() {
    let stack = start().await;
    let rotator = stack.rotator(1, &[]).await;
    let reasons = |answer: &Value| {
        ["slow", "general"].map(|log| {
            log_report(answer, log)["reason"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    };

    stack.db.sql("SET GLOBAL read_only = 1;");
    let answer = invoke(&rotator, scheduled()).await.unwrap();
    for reason in reasons(&answer) {
        assert!(reason.contains("read-only (a replica)"), "{reason}");
    }
    stack
        .db
        .sql("SET GLOBAL read_only = 0; SET GLOBAL log_output = 'FILE';");
    let answer = invoke(&rotator, scheduled()).await.unwrap();
    for reason in reasons(&answer) {
        assert!(reason.contains("log_output is \"FILE\""), "{reason}");
    }
    stack
        .db
        .sql("SET GLOBAL log_output = 'TABLE'; DROP PROCEDURE mysql.rds_rotate_slow_log;");
    let answer = invoke(&rotator, scheduled()).await.unwrap();
    let [slow, general] = reasons(&answer);
    assert!(
        slow.contains("procedure mysql.rds_rotate_slow_log does not exist"),
        "{slow}"
    );
    assert!(general.starts_with("rotated"), "{general}");
    assert_eq!(
        stack
            .db
            .sql("SHOW TABLES FROM mysql LIKE 'slow_log_backup'"),
        ""
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_reports_and_changes_nothing() {
    let stack = start().await;
    let rotator = stack.rotator(1, &[]).await;
    stack.markers(1, 5);
    let answer = invoke(&rotator, sample(FUNCTION_NAME, "02-manual-dry-run.json"))
        .await
        .unwrap();
    assert_eq!(answer["dryRun"], true);
    assert!(
        log_report(&answer, "slow")["reason"]
            .as_str()
            .unwrap()
            .starts_with("dry run: would rotate")
    );
    assert_eq!(stack.db.sql("SHOW TABLES FROM mysql LIKE '%_backup'"), "");
    let listed = stack
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.key_count(), Some(0));

    let error = invoke(&rotator, json!({"instances": ["other-db"]}))
        .await
        .unwrap_err();
    assert_eq!(error["errorType"], "TargetsUnavailable");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("\"other-db\" is not in DB_INSTANCES")
    );
    let error = invoke(&rotator, json!({"dryrun": true})).await.unwrap_err();
    assert_eq!(error["errorType"], "InvalidEvent");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("\"dryrun\"")
    );
}

#[tokio::test]
async fn bad_configuration_fails_init_naming_every_variable() {
    suite_tests::function::assert_init_fails_naming(
        Path::new(env!("CARGO_BIN_EXE_rds-log-rotator")),
        &[
            ("AWS_REGION", "us-east-1"),
            ("DB_INSTANCES", "ok,9bad"),
            ("LOGS", "audit"),
        ],
        &["ARCHIVE_BUCKET", "DB_INSTANCES", "LOGS"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_finds_tagged_mysql_instances_only() {
    use rds_log_rotator::ports::Connector;
    let moto = suite_tests::moto::Moto::start();
    let sdk = moto.sdk_config().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    for (id, engine, tagged) in [
        ("orders-db", "mysql", true),
        // moto cannot create MariaDB instances; aws/rds.rs's unit test covers the engine.
        ("catalog-db", "mysql", true),
        ("reports-db", "postgres", true),
        ("scratch-db", "mysql", false),
    ] {
        let tag = aws_sdk_rds::types::Tag::builder()
            .key(if tagged { "log-rotation" } else { "team" })
            .value("enabled")
            .build();
        rds.create_db_instance()
            .db_instance_identifier(id)
            .engine(engine)
            .db_instance_class("db.t3.micro")
            .master_username("admin")
            .master_user_password("password123")
            .allocated_storage(20)
            .tags(tag)
            .send()
            .await
            .unwrap();
    }
    let config = rds_log_rotator::config::Config::from_env(shared::config::EnvReader::from_map([
        ("AWS_REGION", "us-east-1"),
        ("ARCHIVE_BUCKET", "b"),
    ]))
    .unwrap();
    let connector = rds_log_rotator::aws::rds::RdsConnector {
        rds,
        secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        sdk,
        config,
    };
    let mut ids: Vec<String> = connector
        .targets(None)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["catalog-db", "orders-db"]);
    let only = connector
        .targets(Some(&["orders-db".to_owned()]))
        .await
        .unwrap();
    assert!(
        only[0].endpoint.is_some() && only[0].secret_arn.is_none(),
        "{only:?}: IAM auth by default"
    );
    let missing = connector
        .targets(Some(&["reports-db".to_owned()]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("not a MySQL or MariaDB instance tagged log-rotation=enabled"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_statement_time_limit_does_not_kill_the_archive_stream() {
    let stack = start().await;
    // 40,000 rows of about 400 bytes: far more than socket buffers hold, so
    // the SELECT stays open while the parts upload.
    stack.db.sql(
        "CREATE TABLE mysql.slow_log_fill LIKE mysql.slow_log;
         INSERT INTO mysql.slow_log_fill
           SELECT NOW(6) - INTERVAL (40000 - seq) MICROSECOND, 'root[root] @ localhost []',
                  '00:00:00.000120', '00:00:00.000000', 1, 0, '', 0, 0, 1,
                  CONCAT('SELECT ', seq, ' /* ', REPEAT('x', 360), ' */'), 42, 0
           FROM mysql.seq_0_to_39999;
         RENAME TABLE mysql.slow_log_fill TO mysql.slow_log_backup;
         SET GLOBAL max_statement_time = 1;",
    );
    // S3 answers slowly: the stream lasts longer than the limit.
    let moto = stack.moto.endpoint();
    let (slow_s3, _task) = suite_tests::http::serve(0, move |request| {
        let moto = moto.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            suite_tests::http::forward(&request, &moto).await
        }
    })
    .await
    .unwrap();
    let slow_s3 = format!("http://{slow_s3}");
    let rotator = stack
        .rotator(
            1,
            &[
                ("LOGS", "slow"),
                ("PART_ROWS", "5000"),
                ("AWS_ENDPOINT_URL_S3", &slow_s3),
            ],
        )
        .await;
    let answer = invoke(&rotator, scheduled()).await.unwrap();
    let slow = log_report(&answer, "slow");
    assert_eq!(slow["rotated"], true, "{answer}");
    let archive = stack.archive().await;
    let filled: std::collections::HashSet<&str> = archive["slow"]
        .iter()
        .filter_map(|row| row["sql_text"].as_str())
        .filter(|sql| sql.contains("xxxx"))
        .collect();
    assert_eq!(filled.len(), 40000, "every filled row archived");
}
