//! The real binary under a Runtime API stand-in, against moto DynamoDB, with
//! every sample event; SESv2 against a stand-in that checks the request.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{Value, json};
use ses_bounce_handler::FUNCTION_NAME;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use suite_tests::dynamodb::{DynamoStandIn, Faults};
use suite_tests::events::{sample, samples};
use suite_tests::http::{Received, reply, serve};
use suite_tests::moto::{Moto, Row, create_table, scan};
use suite_tests::running::{Env, Running};

const TABLE: &str = "suppression";

/// Every address in the samples, as written there.
const SAMPLE_ADDRESSES: &[&str] = &[
    "Jane.Doe@Example.com",
    "jane.doe@example.com",
    "john.roe@example.com",
    "full.box@example.net",
    "gone.user@example.net",
    "listed@example.com",
    "angry.reader@example.org",
    "happy.reader@example.org",
    "nobody@example.io",
    "slow.server@example.net",
    "queued.bounce@example.com",
];

struct Harness {
    moto: Moto,
    db: aws_sdk_dynamodb::Client,
}

impl Harness {
    async fn start() -> Self {
        let moto = Moto::start();
        let db = moto.dynamodb().await;
        create_table(&db, TABLE, &["address"]).await;
        Self { moto, db }
    }

    async fn function(&self, extra: &[(&str, &str)]) -> Running {
        let env = Env::from(self.moto.env())
            .set("SUPPRESSION_TABLE", TABLE)
            .extend(extra);
        Running::start(env!("CARGO_BIN_EXE_ses-bounce-handler"), &env).await
    }

    async fn table(&self) -> HashMap<String, Row> {
        scan(&self.db, TABLE)
            .await
            .into_iter()
            .map(|row| (row["address"].as_s().unwrap().clone(), row))
            .collect()
    }
}

/// Plays the sample `name` to the running function: its answer or error.
async fn play(f: &Running, name: &str) -> Result<Value, Value> {
    f.invoke(sample(FUNCTION_NAME, name)).await.result
}

fn text<'a>(row: &'a Row, name: &str) -> &'a str {
    row.get(name)
        .and_then(|v| v.as_s().ok())
        .map_or("", |s| s.as_str())
}

fn number(row: &Row, name: &str) -> i64 {
    row[name].as_n().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sample_leaves_the_table_as_expected() {
    let h = Harness::start().await;
    let f = h.function(&[]).await;

    play(&f, "01-permanent-bounce-two-recipients.json")
        .await
        .unwrap();
    let table = h.table().await;
    assert_eq!(table.len(), 2);
    let jane = &table["jane.doe@example.com"];
    assert_eq!(text(jane, "status"), "suppressed", "normalized key");
    assert_eq!(text(jane, "reason"), "BOUNCE");
    assert_eq!(text(jane, "type"), "Bounce");
    assert_eq!(text(jane, "subType"), "Permanent/General");
    assert!(text(jane, "diagnosticCode").contains("5.1.1"));
    assert_eq!(number(jane, "count"), 1);
    assert_eq!(
        text(jane, "lastFeedbackId"),
        "0100019a1b2c3d4e-11111111-2222-3333-4444-555555555555-000000"
    );
    assert!(!jane.contains_key("expiresAt"), "suppression never expires");
    assert_eq!(text(&table["john.roe@example.com"], "status"), "suppressed");

    play(&f, "02-transient-mailbox-full.json").await.unwrap();
    let full = &h.table().await["full.box@example.net"];
    assert_eq!(text(full, "status"), "soft");
    assert_eq!(full["softBounces"].as_l().unwrap().len(), 1);
    assert!(
        number(full, "expiresAt") > number(full, "version"),
        "soft entries expire"
    );

    play(&f, "03-transient-status-5.1.1.json").await.unwrap();
    let gone = &h.table().await["gone.user@example.net"];
    assert_eq!(
        (text(gone, "status"), text(gone, "reason")),
        ("suppressed", "BOUNCE")
    );

    play(&f, "04-on-account-suppression-list.json")
        .await
        .unwrap();
    let listed = &h.table().await["listed@example.com"];
    assert_eq!(text(listed, "status"), "suppressed");
    assert_eq!(number(listed, "count"), 0, "SES never sent it: not counted");

    play(&f, "05-complaint-abuse.json").await.unwrap();
    let angry = &h.table().await["angry.reader@example.org"];
    assert_eq!(
        (text(angry, "status"), text(angry, "reason")),
        ("suppressed", "COMPLAINT")
    );
    assert_eq!(text(angry, "subType"), "abuse");

    play(&f, "06-complaint-not-spam.json").await.unwrap();
    assert_eq!(
        text(&h.table().await["happy.reader@example.org"], "status"),
        "recorded"
    );

    play(&f, "07-delivery.json").await.unwrap();
    let full = &h.table().await["full.box@example.net"];
    assert_eq!(
        full["softBounces"],
        AttributeValue::L(vec![]),
        "a delivery resets the count"
    );

    play(&f, "08-event-publishing-bounce.json").await.unwrap();
    let nobody = &h.table().await["nobody@example.io"];
    assert_eq!(
        (text(nobody, "status"), text(nobody, "subType")),
        ("suppressed", "Permanent/NoEmail")
    );

    let before = h.table().await;
    let answer = f
        .invoke(sample(FUNCTION_NAME, "09-delivery-delay.json"))
        .await
        .result
        .unwrap();
    assert_eq!(answer["ignored"], 1);
    assert_eq!(h.table().await, before, "a DeliveryDelay changes nothing");

    let answer = f
        .invoke(sample(FUNCTION_NAME, "10-sqs-wrapped-bounce.json"))
        .await
        .result
        .unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(
        text(&h.table().await["queued.bounce@example.com"], "status"),
        "suppressed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_message_three_times_changes_nothing_after_the_first() {
    let h = Harness::start().await;
    let f = h.function(&[]).await;
    let event = sample(FUNCTION_NAME, "02-transient-mailbox-full.json");
    f.invoke(event.clone()).await.result.unwrap();
    let first = h.table().await;
    for _ in 0..2 {
        f.invoke(event.clone()).await.result.unwrap();
    }
    assert_eq!(h.table().await, first);
    let duplicates: u64 = f
        .logs()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|l| l["Duplicates"].as_u64())
        .sum();
    assert_eq!(duplicates, 2, "the EMF metrics count the redeliveries");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_raw_address_appears_in_the_logs() {
    let h = Harness::start().await;
    let f = h.function(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")]).await;
    for (_, event) in samples(FUNCTION_NAME) {
        f.invoke(event).await.result.unwrap();
    }
    // A failing notification logs its error too.
    let bad = json!({"Records": [{"Sns": {"Message": "{\"notificationType\":\"Bounce\",\"mail\":{\"destination\":[\"secret.person@example.com\"]}}"}}]});
    assert!(f.invoke(bad).await.result.is_err());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs = f.logs().join("\n").to_lowercase();
    assert!(logs.contains("j***@example.com"), "the logs were captured");
    for address in SAMPLE_ADDRESSES
        .iter()
        .chain(&["secret.person@example.com"])
    {
        assert!(
            !logs.contains(&address.to_lowercase()),
            "{address} appears in the logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_an_error_naming_the_field() {
    let h = Harness::start().await;
    let f = h.function(&[]).await;
    let message = json!({"notificationType": "Bounce", "mail": {"messageId": "m"}}).to_string();
    let error = f
        .invoke(json!({"Records": [{"Sns": {"Message": message}}]}))
        .await
        .result
        .unwrap_err();
    assert_eq!(error["errorType"], "NotificationsFailed");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Bounce notification has no bounce object")
    );
    let error = f.invoke(json!({"detail": {}})).await.result.unwrap_err();
    assert_eq!(error["errorType"], "UnsupportedEvent");
    // In an SQS batch only the bad message is reported.
    let sqs = json!({"Records": [
        {"eventSource": "aws:sqs", "messageId": "bad-1", "body": "{\"notificationType\":\"Complaint\"}"},
        sample(FUNCTION_NAME, "10-sqs-wrapped-bounce.json")["Records"][0].clone(),
    ]});
    assert_eq!(
        f.invoke(sqs).await.result.unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "bad-1"}]})
    );
}

/// SESv2 stand-in: records PutSuppressedDestination calls, failing the
/// first `fail_first` of them.
async fn sesv2(fail_first: usize) -> (String, Arc<Mutex<Vec<Received>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let (addr, _task) = serve(0, move |request: Received| {
        let seen = seen.clone();
        async move {
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push(request);
                seen.len()
            };
            if n <= fail_first {
                reply(500, r#"{"message":"injected failure"}"#)
            } else {
                reply(200, "{}")
            }
        }
    })
    .await
    .unwrap();
    (format!("http://{addr}"), calls)
}

#[tokio::test(flavor = "multi_thread")]
async fn account_suppression_sends_the_sesv2_request_and_survives_its_failure() {
    let h = Harness::start().await;
    let (endpoint, calls) = sesv2(3).await;
    let f = h
        .function(&[
            ("ACCOUNT_SUPPRESSION", "true"),
            ("AWS_ENDPOINT_URL_SESV2", &endpoint),
            ("AWS_MAX_ATTEMPTS", "1"),
        ])
        .await;
    let complaint = sample(FUNCTION_NAME, "05-complaint-abuse.json");
    // SES fails: the invocation fails and nothing is recorded, so Lambda's
    // retry will do it all again.
    assert!(f.invoke(complaint.clone()).await.result.is_err());
    assert!(!h.table().await.contains_key("angry.reader@example.org"));
    // The SDK may itself retry a 500; let the stand-in's failures run out.
    while calls.lock().unwrap().len() < 3 {
        assert!(f.invoke(complaint.clone()).await.result.is_err());
    }
    f.invoke(complaint).await.result.unwrap();
    assert_eq!(
        text(&h.table().await["angry.reader@example.org"], "reason"),
        "COMPLAINT"
    );
    let recorded = calls.lock().unwrap().clone();
    let last = recorded.last().unwrap();
    assert_eq!(last.method, "PUT");
    assert_eq!(last.path_and_query, "/v2/email/suppression/addresses");
    assert!(
        last.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(
        last.header("authorization")
            .unwrap()
            .contains("/us-east-1/ses/aws4_request"),
        "signed for SES"
    );
    let body: Value = serde_json::from_slice(&last.body).unwrap();
    assert_eq!(
        body,
        json!({"EmailAddress": "angry.reader@example.org", "Reason": "COMPLAINT"})
    );
    // A soft bounce does not reach the account list; a hard one does, once
    // per recipient.
    let before = recorded.len();
    play(&f, "02-transient-mailbox-full.json").await.unwrap();
    assert_eq!(calls.lock().unwrap().len(), before);
    play(&f, "01-permanent-bounce-two-recipients.json")
        .await
        .unwrap();
    let bodies: Vec<Value> = calls.lock().unwrap()[before..]
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!({"EmailAddress": "jane.doe@example.com", "Reason": "BOUNCE"}),
            json!({"EmailAddress": "john.roe@example.com", "Reason": "BOUNCE"}),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_answers_from_the_table() {
    let h = Harness::start().await;
    let f = h.function(&[]).await;
    play(&f, "01-permanent-bounce-two-recipients.json")
        .await
        .unwrap();
    let cli = |address: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ses-suppression"))
            .args(["check", address, "--table", TABLE])
            .env_clear()
            .envs(h.moto.env())
            .output()
            .unwrap()
    };
    let suppressed = cli(" JANE.doe@example.com ");
    assert_eq!(suppressed.status.code(), Some(1));
    let out = String::from_utf8_lossy(&suppressed.stdout);
    assert!(
        out.starts_with("jane.doe@example.com: SUPPRESSED; reason BOUNCE"),
        "{out}"
    );
    let fine = cli("someone.else@example.com");
    assert_eq!(fine.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&fine.stdout).contains("not suppressed (no record)"));
    let usage = std::process::Command::new(env!("CARGO_BIN_EXE_ses-suppression"))
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_configuration_fails_init_naming_every_variable() {
    suite_tests::function::assert_init_fails_naming(
        Path::new(env!("CARGO_BIN_EXE_ses-bounce-handler")),
        &[("SOFT_BOUNCE_THRESHOLD", "0")],
        &["SUPPRESSION_TABLE", "SOFT_BOUNCE_THRESHOLD"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_notifications_for_one_address_lose_no_count() {
    use ses_bounce_handler::aws::dynamodb::DynamoStore;
    use ses_bounce_handler::fallback::{Disabled, SystemClock};
    use ses_bounce_handler::processor::{Processor, Settings, Tally};
    use ses_bounce_handler::suppression::Escalation;

    // The stand-in's conditional writes are atomic, as DynamoDB's are;
    // moto's are not (its server checks and writes without a lock, and
    // loses an update now and then under this test).
    let db = DynamoStandIn::start(&[(TABLE, &["address"])], Faults::none(Duration::ZERO))
        .await
        .unwrap();
    let sdk = suite_tests::moto::local_sdk_config(&db.endpoint()).await;
    let processor = Arc::new(Processor::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), TABLE),
        Disabled,
        SystemClock,
        Settings {
            escalation: Escalation {
                threshold: 1000,
                window_secs: 86_400,
            },
            ..Settings::default()
        },
    ));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let processor = processor.clone();
            tokio::spawn(async move {
                let message = json!({"notificationType": "Bounce", "mail": {"messageId": format!("m-{i}")},
                    "bounce": {"bounceType": "Transient", "bounceSubType": "General", "feedbackId": format!("f-{i}"),
                               "bouncedRecipients": [{"emailAddress": "busy@example.com", "status": "4.4.7"}]}})
                .to_string();
                // As Lambda would: a notification that failed comes back.
                let mut conflicts = 0;
                while processor.notification(&message, &mut Tally::default()).await.is_err() {
                    conflicts += 1;
                }
                conflicts
            })
        })
        .collect();
    let mut gave_up = 0;
    for task in tasks {
        gave_up += task.await.unwrap();
    }
    let items = db.items(TABLE);
    let busy = items.values().next().expect("one item");
    assert_eq!(busy["count"]["N"], "20", "every notification counted once");
    assert_eq!(busy["softBounces"]["L"].as_array().unwrap().len(), 20);
    eprintln!("{gave_up} notifications were retried after repeated conflicts");
}

/// A bounce whose middle recipient is blank.
fn bounce_with_a_blank_recipient(feedback: &str) -> String {
    json!({"notificationType": "Bounce", "mail": {"messageId": "m-blank"},
           "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "feedbackId": feedback,
                      "bouncedRecipients": [
                          {"emailAddress": "first.valid@example.com", "status": "5.1.1"},
                          {"emailAddress": "  ", "status": "5.1.1"},
                          {"emailAddress": "last.valid@example.com", "status": "5.1.1"}]}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_recipient_does_not_stop_the_others() {
    let h = Harness::start().await;
    let f = h.function(&[]).await;
    let sns = json!({"Records": [{"Sns": {"Message": bounce_with_a_blank_recipient("f-sns")}}]});
    // SNS: the valid ones are applied, the invocation still fails (so the
    // retries and then the dead-letter queue get it), and the retries
    // count nothing twice.
    for attempt in 0..3 {
        let error = f.invoke(sns.clone()).await.result.unwrap_err();
        assert_eq!(
            error["errorType"], "NotificationsFailed",
            "attempt {attempt}"
        );
        let message = error["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("recipient emailAddress is empty"),
            "{message}"
        );
        let table = h.table().await;
        for address in ["first.valid@example.com", "last.valid@example.com"] {
            let row = table
                .get(address)
                .unwrap_or_else(|| panic!("{address} not applied (attempt {attempt})"));
            assert_eq!(text(row, "status"), "suppressed");
            assert_eq!(number(row, "count"), 1, "{address} counted once");
        }
        assert_eq!(table.len(), 2);
    }
    // SQS: only that message is reported, its valid recipients applied.
    let sqs = json!({"Records": [
        {"eventSource": "aws:sqs", "messageId": "blank-1", "body": bounce_with_a_blank_recipient("f-sqs")},
        sample(FUNCTION_NAME, "10-sqs-wrapped-bounce.json")["Records"][0].clone(),
    ]});
    assert_eq!(
        f.invoke(sqs).await.result.unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "blank-1"}]})
    );
    let table = h.table().await;
    assert_eq!(number(&table["last.valid@example.com"], "count"), 2);
    assert_eq!(
        text(&table["queued.bounce@example.com"], "status"),
        "suppressed"
    );
}
