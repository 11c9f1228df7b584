//! Every guarantee of the responder, each its own test, against a real HTTP
//! sink playing CloudFormation (and moto where AWS is involved).

mod common;

use cfn_responder::aws::dynamodb::DynamoStore;
use cfn_responder::aws::ec2::Ec2Images;
use cfn_responder::cfn::props::lenient;
use cfn_responder::cfn::{HttpsPut, ResponseUrlPolicy, RetryPolicy};
use cfn_responder::fallback::LocalStore;
use cfn_responder::ports::{Claim, IdempotencyStore};
use cfn_responder::resource::{CustomResource, Outcome, Registry, RequestContext, ResourceError};
use cfn_responder::resources::ami_lookup::AmiLookup;
use cfn_responder::responder::{Responder, ResponderError, Settings, Summary};
use common::*;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use suite_tests::logs::Captured;
use suite_tests::moto::Moto;
use suite_tests::sink::Sink;
use tokio::time::Instant;

/// A resource type whose behaviour the test chooses through its properties.
#[derive(Clone, Default)]
struct Probe {
    calls: Arc<Mutex<Vec<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ProbeProps {
    name: String,
    #[serde(default, deserialize_with = "lenient::number")]
    size: u32,
    #[serde(default, deserialize_with = "lenient::bool")]
    enabled: bool,
    #[serde(default)]
    behaviour: String,
    #[serde(default, deserialize_with = "lenient::number")]
    amount: usize,
}

impl Probe {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    async fn act(
        &self,
        op: &str,
        ctx: &RequestContext,
        props: &ProbeProps,
    ) -> Result<Outcome, ResourceError> {
        tracing::info!(op, "probe acting");
        self.calls
            .lock()
            .unwrap()
            .push(format!("{op} {}", ctx.physical_resource_id));
        match props.behaviour.as_str() {
            "error" => Err(ResourceError::Service("the widget API said no".into())),
            "panic" => panic!("widget invariant broken"),
            "hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                unreachable!()
            }
            "slow" => {
                tokio::time::sleep(Duration::from_millis(props.amount as u64)).await;
                Ok(Outcome::default())
            }
            "long-reason" => Err(ResourceError::Service(format!(
                "{}ROOT CAUSE",
                "detail ".repeat(props.amount)
            ))),
            "big-data" => Ok(Outcome::with_data([(
                "Blob",
                Value::from("x".repeat(props.amount)),
            )])),
            "secret" => Ok(Outcome {
                no_echo: true,
                ..Outcome::with_data([("Password", Value::from("hunter2"))])
            }),
            _ => Ok(Outcome::with_data([
                ("Name", Value::from(props.name.clone())),
                ("Size", Value::from(props.size)),
                ("Enabled", Value::from(props.enabled)),
            ])),
        }
    }
}

impl CustomResource for Probe {
    const RESOURCE_TYPE: &'static str = "Custom::Probe";
    type Properties = ProbeProps;

    async fn create(
        &self,
        ctx: &RequestContext,
        props: &ProbeProps,
    ) -> Result<Outcome, ResourceError> {
        self.act("create", ctx, props).await
    }

    async fn update(
        &self,
        ctx: &RequestContext,
        _old: &ProbeProps,
        new: &ProbeProps,
    ) -> Result<Outcome, ResourceError> {
        self.act("update", ctx, new).await
    }

    async fn delete(
        &self,
        ctx: &RequestContext,
        props: &ProbeProps,
    ) -> Result<Outcome, ResourceError> {
        self.act("delete", ctx, props).await
    }

    fn requires_replacement(&self, old: &ProbeProps, new: &ProbeProps) -> bool {
        old.name != new.name
    }
}

const PROBE: &str = "Custom::Probe";

fn settings() -> Settings {
    Settings {
        timeout_margin: Duration::from_millis(1500),
        url_policy: ResponseUrlPolicy { allow_local: true },
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            attempt_timeout: Duration::from_secs(2),
        },
    }
}

fn responder_with<S: IdempotencyStore>(probe: &Probe, store: S) -> Responder<S, HttpsPut> {
    Responder::new(
        Registry::new().register(probe.clone()),
        store,
        HttpsPut::default(),
        settings(),
    )
}

fn responder(probe: &Probe) -> Responder<LocalStore, HttpsPut> {
    responder_with(probe, LocalStore::default())
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

async fn sink() -> Sink {
    Sink::start(0).await.expect("sink")
}

/// Sends `event` as CloudFormation would; returns the one response it got.
async fn play<S: IdempotencyStore>(
    responder: &Responder<S, HttpsPut>,
    sink: &Sink,
    id: &str,
    event: &Value,
) -> Value {
    responder.handle(event.clone(), in_secs(30)).await.unwrap();
    the_one_response(sink, id, event)
}

/// One Create of the probe with `props`, answered to a fresh sink: what
/// CloudFormation received, and what the invocation returned.
async fn create_probe(props: Value) -> (Value, Summary) {
    let (sink, probe) = (sink().await, Probe::default());
    let sent = request("Create", "r1", &sink.url("r1"), PROBE, props);
    let summary = responder(&probe)
        .handle(sent.clone(), in_secs(30))
        .await
        .unwrap();
    (the_one_response(&sink, "r1", &sent), summary)
}

/// A resource handler runs in a task of its own: its lines still carry the
/// invocation's and the request's ids.
#[tokio::test]
async fn resource_logs_carry_the_invocation_and_request_ids() {
    use tracing::Instrument;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = shared::logging::subscriber(
        "cfn-responder",
        true,
        tracing::level_filters::LevelFilter::INFO,
        move || writer.clone(),
    );
    // This thread's subscriber; the test runtime runs spawned tasks here.
    let _default = tracing::subscriber::set_default(subscriber);
    let (sink, probe) = (sink().await, Probe::default());
    let sent = request(
        "Create",
        "logs-1",
        &sink.url("logs-1"),
        PROBE,
        json!({"Name": "a"}),
    );
    let invocations = shared::runtime::Invocations::new("cfn-responder");
    let (span, _) = invocations.begin("fn-req-1", Some("Root=1-abc"));
    responder(&probe)
        .handle(sent.clone(), in_secs(30))
        .instrument(span)
        .await
        .unwrap();
    assert_eq!(
        the_one_response(&sink, "logs-1", &sent)["Status"],
        "SUCCESS"
    );

    let text = captured.text();
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "probe acting")
        .unwrap_or_else(|| panic!("no probe line in {text}"));
    assert_eq!(line["function_request_id"], "fn-req-1", "{line}");
    assert_eq!(line["xray_trace_id"], "1-abc", "{line}");
    assert_eq!(line["cold_start"], true, "{line}");
    assert_eq!(line["stack_id"], STACK_ID, "{line}");
    assert_eq!(line["request_id"], "logs-1", "{line}");
    assert_eq!(line["logical_resource_id"], "Thing", "{line}");
    assert_eq!(line["resource_type"], PROBE, "{line}");
}

#[tokio::test]
async fn stack_lifecycle_create_update_replace_delete() {
    let (sink, probe) = (sink().await, Probe::default());
    let responder = responder(&probe);
    let v1 = json!({"Name": "alpha", "Size": "5", "Enabled": "true"});
    let v2 = json!({"Name": "alpha", "Size": "6", "Enabled": "false"});
    let v3 = json!({"Name": "beta", "Size": "6"});

    let create = request(
        "Create",
        "req-create",
        &sink.url("create"),
        PROBE,
        v1.clone(),
    );
    let created = play(&responder, &sink, "create", &create).await;
    assert_eq!(created["Status"], "SUCCESS");
    assert_eq!(
        created["Data"],
        json!({"Name": "alpha", "Size": 5, "Enabled": true})
    );
    let first_id = created["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert!(first_id.starts_with("demo-app-Thing-"), "{first_id}");

    let in_place = update(
        "req-update",
        &sink.url("update"),
        PROBE,
        &first_id,
        v1.clone(),
        v2.clone(),
    );
    let updated = play(&responder, &sink, "update", &in_place).await;
    assert_eq!(updated["Status"], "SUCCESS");
    assert_eq!(
        updated["PhysicalResourceId"],
        first_id.as_str(),
        "in-place update keeps the id"
    );

    let replace = update(
        "req-replace",
        &sink.url("replace"),
        PROBE,
        &first_id,
        v2.clone(),
        v3.clone(),
    );
    let replaced = play(&responder, &sink, "replace", &replace).await;
    assert_eq!(replaced["Status"], "SUCCESS");
    let second_id = replaced["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert_ne!(second_id, first_id, "a replacement gets a new id");

    let delete_old = delete(
        "req-delete-old",
        &sink.url("delete-old"),
        PROBE,
        &first_id,
        v2,
    );
    responder
        .handle(delete_old.clone(), in_secs(30))
        .await
        .unwrap();
    assert_eq!(
        the_one_response(&sink, "delete-old", &delete_old)["Status"],
        "SUCCESS"
    );

    let delete_new = delete(
        "req-delete-new",
        &sink.url("delete-new"),
        PROBE,
        &second_id,
        v3,
    );
    responder
        .handle(delete_new.clone(), in_secs(30))
        .await
        .unwrap();
    assert_eq!(
        the_one_response(&sink, "delete-new", &delete_new)["Status"],
        "SUCCESS"
    );

    assert_eq!(
        probe.calls(),
        vec![
            format!("create {first_id}"),
            format!("update {first_id}"),
            format!("create {second_id}"),
            format!("delete {first_id}"),
            format!("delete {second_id}"),
        ]
    );
}

#[tokio::test]
async fn handler_error_becomes_failed_with_its_reason() {
    let (body, _) = create_probe(json!({"Name": "a", "Behaviour": "error"})).await;
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["Reason"], "the widget API said no");
}

#[tokio::test]
async fn panic_becomes_failed_with_its_message() {
    let (body, _) = create_probe(json!({"Name": "a", "Behaviour": "panic"})).await;
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(
        body["Reason"],
        "the Custom::Probe handler panicked: widget invariant broken"
    );
}

#[tokio::test]
async fn invalid_properties_fail_naming_the_field() {
    let (sink, probe) = (sink().await, Probe::default());
    for (id, props, field) in [
        (
            "bad-size",
            json!({"Name": "a", "Size": "five"}),
            "invalid property Size: expected a number",
        ),
        (
            "bad-bool",
            json!({"Name": "a", "Enabled": "perhaps"}),
            "invalid property Enabled: expected true or false",
        ),
        (
            "missing",
            json!({"Size": "5"}),
            "invalid property Name: missing field `Name`",
        ),
        (
            "typo",
            json!({"Name": "a", "Sise": "5"}),
            "invalid property Sise: unknown field `Sise`",
        ),
    ] {
        let sent = request("Create", id, &sink.url(id), PROBE, props);
        responder(&probe)
            .handle(sent.clone(), in_secs(30))
            .await
            .unwrap();
        let body = the_one_response(&sink, id, &sent);
        assert_eq!(body["Status"], "FAILED");
        let reason = body["Reason"].as_str().unwrap();
        assert!(reason.starts_with(field), "{id}: {reason}");
    }
    assert!(
        probe.calls().is_empty(),
        "bad properties never reach the type"
    );
}

#[tokio::test]
async fn string_scalars_are_accepted() {
    let (body, _) = create_probe(json!({"Name": "a", "Size": "5", "Enabled": "true"})).await;
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["Data"]["Size"], 5);
    assert_eq!(body["Data"]["Enabled"], true);
}

#[tokio::test]
async fn timeout_is_answered_failed_before_the_deadline() {
    let (sink, probe) = (sink().await, Probe::default());
    let sent = request(
        "Create",
        "r1",
        &sink.url("r1"),
        PROBE,
        json!({"Name": "a", "Behaviour": "hang"}),
    );
    let deadline = in_secs(4);
    responder(&probe)
        .handle(sent.clone(), deadline)
        .await
        .unwrap();
    assert!(
        Instant::now() < deadline,
        "answered before the Lambda deadline"
    );
    let body = the_one_response(&sink, "r1", &sent);
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with("timed out: the Custom::Probe handler was still running 1500 ms"),
        "{reason}"
    );
    assert!(
        body["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .contains("create-failed")
    );
}

#[tokio::test]
async fn init_failure_is_answered_failed() {
    let sink = sink().await;
    let responder = Responder::failed_init(
        "invalid configuration: TIMEOUT_MARGIN_MS=\"soon\" is invalid".into(),
        LocalStore::default(),
        HttpsPut::default(),
        settings(),
    );
    let sent = request("Create", "r1", &sink.url("r1"), PROBE, json!({"Name": "a"}));
    let body = play(&responder, &sink, "r1", &sent).await;
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(
        body["Reason"],
        "the function failed to initialise: invalid configuration: TIMEOUT_MARGIN_MS=\"soon\" is invalid"
    );

    // The rollback's Delete of that failed Create still succeeds.
    let failed_id = body["PhysicalResourceId"].as_str().unwrap();
    let rollback = delete(
        "r2",
        &sink.url("r2"),
        PROBE,
        failed_id,
        json!({"Name": "a"}),
    );
    responder
        .handle(rollback.clone(), in_secs(30))
        .await
        .unwrap();
    assert_eq!(
        the_one_response(&sink, "r2", &rollback)["Status"],
        "SUCCESS"
    );
}

#[tokio::test]
async fn delete_of_an_id_never_issued_succeeds_untouched() {
    let (sink, probe) = (sink().await, Probe::default());
    let responder = responder(&probe);
    // A failed Create, then the Delete CloudFormation sends during rollback.
    let create = request(
        "Create",
        "c1",
        &sink.url("c1"),
        PROBE,
        json!({"Name": "a", "Behaviour": "error"}),
    );
    responder.handle(create.clone(), in_secs(30)).await.unwrap();
    let failed_id = the_one_response(&sink, "c1", &create)["PhysicalResourceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let rollback = delete(
        "d1",
        &sink.url("d1"),
        PROBE,
        &failed_id,
        json!({"Name": "a"}),
    );
    let body = play(&responder, &sink, "d1", &rollback).await;
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], failed_id.as_str());

    // The rollback of a Create still in flight: an id from somewhere else,
    // and properties that would not even parse.
    let foreign = delete(
        "d2",
        &sink.url("d2"),
        PROBE,
        "2026/11/21/[$LATEST]0123abcd",
        json!({"Junk": 1}),
    );
    responder
        .handle(foreign.clone(), in_secs(30))
        .await
        .unwrap();
    assert_eq!(the_one_response(&sink, "d2", &foreign)["Status"], "SUCCESS");
    assert_eq!(
        probe.calls().len(),
        1,
        "only the failed create ran: {:?}",
        probe.calls()
    );
    assert!(
        probe.calls()[0].starts_with("create "),
        "no delete reached the type"
    );
}

#[tokio::test]
async fn oversized_reason_keeps_its_tail_within_4096_bytes() {
    let (body, _) =
        create_probe(json!({"Name": "a", "Behaviour": "long-reason", "Amount": "2000"})).await;
    assert_eq!(body["Status"], "FAILED");
    assert!(body["Reason"].as_str().unwrap().ends_with("ROOT CAUSE"));
}

#[tokio::test]
async fn oversized_data_is_dropped_and_said() {
    let (body, _) =
        create_probe(json!({"Name": "a", "Behaviour": "big-data", "Amount": "6000"})).await;
    assert_eq!(
        body["Status"], "FAILED",
        "GetAtt on the missing Data would fail later, so fail now"
    );
    assert!(body.get("Data").is_none());
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .contains("was dropped because the response must be at most 4096 bytes")
    );
}

#[tokio::test]
async fn put_retries_5xx_then_delivers() {
    let (sink, probe) = (sink().await, Probe::default());
    sink.script(&[500, 503]);
    let sent = request("Create", "r1", &sink.url("r1"), PROBE, json!({"Name": "a"}));
    let summary = responder(&probe).handle(sent, in_secs(30)).await.unwrap();
    assert_eq!(sink.received("r1").len(), 3);
    assert_eq!(summary.delivery, "delivered (HTTP 200) after 3 attempt(s)");
    let bodies: Vec<_> = sink.received("r1").iter().map(|r| r.body.clone()).collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every attempt sends the same body"
    );
}

#[tokio::test]
async fn put_4xx_is_final() {
    let (sink, probe) = (sink().await, Probe::default());
    sink.script(&[403]);
    let sent = request("Create", "r1", &sink.url("r1"), PROBE, json!({"Name": "a"}));
    let summary = responder(&probe).handle(sent, in_secs(30)).await.unwrap();
    assert_eq!(sink.received("r1").len(), 1, "4xx is not retried");
    assert!(
        summary.delivery.starts_with("refused with HTTP 403"),
        "{}",
        summary.delivery
    );
}

#[tokio::test]
async fn put_gives_up_within_attempts_and_deadline() {
    let (sink, probe) = (sink().await, Probe::default());
    sink.script(&[500; 50]);
    let sent = request("Create", "r1", &sink.url("r1"), PROBE, json!({"Name": "a"}));
    let deadline = in_secs(20);
    let err = responder(&probe).handle(sent, deadline).await.unwrap_err();
    assert!(
        matches!(err, ResponderError::NotDelivered { attempts: 4, .. }),
        "{err}"
    );
    assert_eq!(sink.received("r1").len(), 4, "bounded by max attempts");
    assert!(Instant::now() < deadline);

    // Connection refused: retried, bounded by the deadline.
    let closed = format!("http://127.0.0.1:{}/x", suite_tests::process::free_port());
    let sent = request("Create", "r2", &closed, PROBE, json!({"Name": "a"}));
    let deadline = in_secs(3);
    assert!(responder(&probe).handle(sent, deadline).await.is_err());
    assert!(Instant::now() < deadline);
}

/// The PUT goes to the URL that was checked and nowhere else: a redirect is
/// a reply like any other non-2xx, non-4xx one (retried), never followed.
#[tokio::test]
async fn put_does_not_follow_redirects() {
    let (sink, probe) = (sink().await, Probe::default());
    let elsewhere = sink.url("elsewhere");
    let (moved, _server) = suite_tests::http::serve(0, move |_| {
        let mut reply = suite_tests::http::reply(307, "");
        reply
            .headers_mut()
            .insert("location", elsewhere.parse().unwrap());
        async move { reply }
    })
    .await
    .unwrap();
    let url = format!("http://{moved}/r1");
    let sent = request("Create", "r1", &url, PROBE, json!({"Name": "a"}));
    let err = responder(&probe)
        .handle(sent, in_secs(20))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ResponderError::NotDelivered { attempts: 4, .. }),
        "{err}"
    );
    assert!(sink.all_received().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn response_url_must_be_s3_unless_local_is_allowed() {
    let (sink, probe) = (sink().await, Probe::default());
    let strict = Responder::new(
        Registry::new().register(probe.clone()),
        LocalStore::default(),
        HttpsPut::default(),
        Settings {
            url_policy: ResponseUrlPolicy { allow_local: false },
            ..settings()
        },
    );
    let sent = request("Create", "r1", &sink.url("r1"), PROBE, json!({"Name": "a"}));
    let err = strict.handle(sent, in_secs(30)).await.unwrap_err();
    assert!(matches!(err, ResponderError::ResponseUrl(_)), "{err}");
    let metadata = request(
        "Create",
        "r2",
        "http://169.254.169.254/latest/meta-data/",
        PROBE,
        json!({"Name": "a"}),
    );
    assert!(strict.handle(metadata, in_secs(30)).await.is_err());
    assert!(sink.all_received().is_empty(), "nothing was sent anywhere");
    assert!(
        probe.calls().is_empty(),
        "no side effect for an unanswerable request"
    );
}

#[tokio::test]
async fn malformed_request_is_still_answered_failed() {
    let (sink, probe) = (sink().await, Probe::default());
    let mut sent = request("Create", "r1", &sink.url("r1"), PROBE, json!({"Name": "a"}));
    sent.as_object_mut().unwrap().remove("ResourceType");
    let body = play(&responder(&probe), &sink, "r1", &sent).await;
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"].as_str().unwrap().contains("ResourceType"),
        "{body}"
    );

    let unknown = request("Create", "r2", &sink.url("r2"), "Custom::Nope", json!({}));
    let body = play(&responder(&probe), &sink, "r2", &unknown).await;
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .starts_with("unsupported ResourceType \"Custom::Nope\"")
    );
}

async fn assert_duplicates_run_once<S: IdempotencyStore>(store: S, request_id: &str) {
    let (sink, probe) = (sink().await, Probe::default());
    let responder = responder_with(&probe, store);
    let sent = request(
        "Create",
        request_id,
        &sink.url(request_id),
        PROBE,
        json!({"Name": "a"}),
    );
    for _ in 0..3 {
        responder.handle(sent.clone(), in_secs(30)).await.unwrap();
    }
    assert_eq!(
        probe.calls().len(),
        1,
        "side effects ran once: {:?}",
        probe.calls()
    );
    let puts = sink.received(request_id);
    assert_eq!(puts.len(), 3, "each delivery answers (the same answer)");
    assert!(puts.iter().all(|p| p.body == puts[0].body));
}

#[tokio::test]
async fn duplicate_delivery_runs_side_effects_once_in_memory() {
    assert_duplicates_run_once(LocalStore::default(), "dup-memory").await;
}

#[tokio::test]
async fn duplicate_delivery_runs_side_effects_once_with_dynamodb() {
    let moto = Moto::start();
    let dynamo = moto.dynamodb().await;
    suite_tests::moto::create_table(&dynamo, "idempotency", &["RequestId"]).await;
    assert_duplicates_run_once(DynamoStore::new(dynamo, "idempotency"), "dup-dynamo").await;
}

#[tokio::test]
async fn ami_lookup_against_moto() {
    let moto = Moto::start();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config().await);
    let images = ec2.describe_images().owners("amazon").send().await.unwrap();
    let sample = images
        .images()
        .iter()
        .find(|i| i.architecture().map(|a| a.as_str()) == Some("x86_64") && i.name().is_some())
        .expect("moto ships amazon images");
    let name = sample.name().unwrap().to_owned();

    let sink = sink().await;
    let responder = Responder::new(
        Registry::new().register(AmiLookup::new(Ec2Images(ec2))),
        LocalStore::default(),
        HttpsPut::default(),
        settings(),
    );
    let props = json!({"Owners": ["amazon"], "NamePattern": name, "Architecture": "x86_64"});
    let sent = request(
        "Create",
        "ami",
        &sink.url("ami"),
        "Custom::AmiLookup",
        props,
    );
    let body = play(&responder, &sink, "ami", &sent).await;
    assert_eq!(body["Status"], "SUCCESS", "{body}");
    assert_eq!(body["Data"]["Name"], name.as_str());
    assert!(
        body["Data"]["ImageId"]
            .as_str()
            .unwrap()
            .starts_with("ami-")
    );

    let none =
        json!({"Owners": "amazon", "NamePattern": "no-such-image-*", "Architecture": "arm64"});
    let sent = request(
        "Create",
        "none",
        &sink.url("none"),
        "Custom::AmiLookup",
        none,
    );
    let body = play(&responder, &sink, "none", &sent).await;
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .contains("no available image matches"),
        "{body}"
    );
}

#[tokio::test]
async fn no_echo_data_reaches_cloudformation_only() {
    let (body, summary) = create_probe(json!({"Name": "a", "Behaviour": "secret"})).await;
    assert_eq!(body["NoEcho"], true);
    assert_eq!(body["Data"]["Password"], "hunter2");
    let returned = serde_json::to_string(&summary).unwrap();
    assert!(
        !returned.contains("hunter2"),
        "the invocation result must not echo it: {returned}"
    );
}

#[tokio::test]
async fn concurrent_duplicate_leaves_the_answer_to_the_first() {
    let (sink, probe) = (sink().await, Probe::default());
    let responder = responder(&probe);
    let sent = request(
        "Create",
        "r1",
        &sink.url("r1"),
        PROBE,
        json!({"Name": "a", "Behaviour": "slow", "Amount": "800"}),
    );
    let (first, second) = tokio::join!(responder.handle(sent.clone(), in_secs(30)), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        responder.handle(sent.clone(), in_secs(30)).await
    });
    assert!(first.unwrap().response.is_some());
    let second = second.unwrap();
    assert!(second.response.is_none());
    assert_eq!(second.delivery, "left to the delivery already running");
    assert_eq!(probe.calls().len(), 1);
    assert_eq!(the_one_response(&sink, "r1", &sent)["Status"], "SUCCESS");
}

#[tokio::test]
async fn duplicate_of_a_delivery_that_died_fails_instead_of_repeating() {
    let (sink, probe) = (sink().await, Probe::default());
    let store = LocalStore::default();
    // A first delivery claimed the request, then its environment died.
    let claimed_until = SystemTime::now() - Duration::from_secs(1);
    assert_eq!(
        store.claim("r1", claimed_until).await.unwrap(),
        Claim::Fresh
    );
    let sent = request("Create", "r1", &sink.url("r1"), PROBE, json!({"Name": "a"}));
    responder_with(&probe, store)
        .handle(sent.clone(), in_secs(30))
        .await
        .unwrap();
    let body = the_one_response(&sink, "r1", &sent);
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .starts_with("an earlier delivery of this request stopped")
    );
    assert!(probe.calls().is_empty(), "side effects are not repeated");
}
