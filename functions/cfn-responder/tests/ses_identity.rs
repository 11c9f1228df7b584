//! Custom::SesIdentityNotifications against moto SES, through a pass-through
//! stand-in on 127.0.0.1. moto lacks SetIdentityHeadersInNotificationsEnabled,
//! does not report topics back and enforces none of SES's rules, so the
//! stand-in records every call, keeps the identities' notification state as
//! SES would, answers GetIdentityNotificationAttributes from it, refuses what
//! SES refuses (forwarding off without both topics; unsetting a bounce or
//! complaint topic while forwarding is off), injects faults on demand, and
//! passes the rest on to moto.

mod common;

use cfn_responder::aws::dynamodb::DynamoOwners;
use cfn_responder::aws::ses::SesV1;
use cfn_responder::cfn::{HttpsPut, ResponseUrlPolicy};
use cfn_responder::fallback::LocalStore;
use cfn_responder::resource::Registry;
use cfn_responder::resources::ses_identity_notifications::SesIdentityNotifications;
use cfn_responder::responder::{Responder, Settings};
use common::{STACK_ID, delete, request, the_one_response, update};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use suite_tests::form;
use suite_tests::http::{Received, forward, reply, serve};
use suite_tests::moto::Moto;
use suite_tests::sink::Sink;
use tokio::time::Instant;

const TYPE: &str = "Custom::SesIdentityNotifications";
const XMLNS: &str = "http://ses.amazonaws.com/doc/2010-12-01/";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ses";
const OTHER_TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:someone-else";
const OTHER_STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/other-app/0b6a1f52-7c1b-11ee-b962-0242ac120002";

/// The form fields of one SES query call.
type Form = HashMap<String, String>;
type Fault = Box<dyn Fn(&Form) -> bool + Send>;

/// One identity as SES keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    /// Bounce, Complaint, Delivery -> topic ARN.
    topics: BTreeMap<String, String>,
    forwarding: bool,
}

#[derive(Default)]
struct State {
    calls: Vec<Form>,
    identities: BTreeMap<String, Identity>,
    fault: Option<Fault>,
}

#[derive(Clone, Default)]
struct FakeSes(Arc<Mutex<State>>);

/// What the stand-in does with a call once the state is updated.
enum Then {
    Answer(u16, String),
    Forward,
}

fn ok(action: &str) -> Then {
    Then::Answer(
        200,
        format!(
            "<{action}Response xmlns=\"{XMLNS}\"><{action}Result/><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></{action}Response>"
        ),
    )
}

fn refused(message: &str) -> Then {
    Then::Answer(
        400,
        format!(
            "<ErrorResponse xmlns=\"{XMLNS}\"><Error><Type>Sender</Type><Code>InvalidParameterValue</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        ),
    )
}

impl FakeSes {
    async fn start(moto: &Moto) -> (String, Self) {
        let ses = Self::default();
        let (state, upstream) = (ses.clone(), moto.endpoint());
        let (addr, _task) = serve(0, move |request: Received| {
            let (state, upstream) = (state.clone(), upstream.clone());
            async move {
                match state.decide(form::pairs(&request.body).into_iter().collect()) {
                    Then::Answer(status, body) => reply(status, body),
                    Then::Forward => forward(&request, &upstream).await,
                }
            }
        })
        .await
        .unwrap();
        (format!("http://{addr}"), ses)
    }

    fn decide(&self, form: Form) -> Then {
        let mut state = self.0.lock().unwrap();
        state.calls.push(form.clone());
        let get = |k: &str| form.get(k).cloned().unwrap_or_default();
        let action = get("Action");
        if state.fault.as_ref().is_some_and(|fault| fault(&form)) {
            return refused("injected fault");
        }
        let identity = get("Identity");
        match action.as_str() {
            "VerifyDomainIdentity" | "VerifyEmailIdentity" => {
                let name = form.get("Domain").or(form.get("EmailAddress")).cloned();
                state
                    .identities
                    .entry(name.unwrap_or_default())
                    .or_insert(Identity {
                        topics: BTreeMap::new(),
                        forwarding: true,
                    });
                Then::Forward
            }
            "DeleteIdentity" => {
                state.identities.remove(&identity);
                Then::Forward
            }
            "GetIdentityNotificationAttributes" => {
                let entries: String = (1..)
                    .map_while(|i| form.get(&format!("Identities.member.{i}")))
                    .filter_map(|name| state.identities.get(name).map(|id| (name, id)))
                    .map(|(name, id)| {
                        let topics: String = id
                            .topics
                            .iter()
                            .map(|(kind, arn)| format!("<{kind}Topic>{arn}</{kind}Topic>"))
                            .collect();
                        format!(
                            "<entry><key>{name}</key><value>{topics}<ForwardingEnabled>{}</ForwardingEnabled><HeadersInBounceNotificationsEnabled>false</HeadersInBounceNotificationsEnabled><HeadersInComplaintNotificationsEnabled>false</HeadersInComplaintNotificationsEnabled><HeadersInDeliveryNotificationsEnabled>false</HeadersInDeliveryNotificationsEnabled></value></entry>",
                            id.forwarding
                        )
                    })
                    .collect();
                Then::Answer(
                    200,
                    format!(
                        "<GetIdentityNotificationAttributesResponse xmlns=\"{XMLNS}\"><GetIdentityNotificationAttributesResult><NotificationAttributes>{entries}</NotificationAttributes></GetIdentityNotificationAttributesResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetIdentityNotificationAttributesResponse>"
                    ),
                )
            }
            "SetIdentityHeadersInNotificationsEnabled" => match state.identities.get(&identity) {
                Some(_) => ok(&action),
                None => refused("identity does not exist"),
            },
            "SetIdentityNotificationTopic" => {
                let Some(id) = state.identities.get_mut(&identity) else {
                    return refused("identity does not exist");
                };
                let kind = get("NotificationType");
                match form.get("SnsTopic") {
                    Some(topic) => {
                        id.topics.insert(kind, topic.clone());
                        Then::Forward
                    }
                    None if !id.forwarding && kind != "Delivery" => refused(
                        "feedback forwarding is disabled: bounce and complaint topics are required",
                    ),
                    // moto fails (500) on unsetting a topic that is not set; SES does not.
                    None => match id.topics.remove(&kind) {
                        Some(_) => Then::Forward,
                        None => ok(&action),
                    },
                }
            }
            "SetIdentityFeedbackForwardingEnabled" => {
                let Some(id) = state.identities.get_mut(&identity) else {
                    return refused("identity does not exist");
                };
                let enabled = get("ForwardingEnabled") == "true";
                let both = ["Bounce", "Complaint"]
                    .iter()
                    .all(|k| id.topics.contains_key(*k));
                if !enabled && !both {
                    return refused(
                        "forwarding can only be disabled with bounce and complaint topics",
                    );
                }
                id.forwarding = enabled;
                Then::Forward
            }
            _ => Then::Forward,
        }
    }

    fn fail_when(&self, fault: impl Fn(&Form) -> bool + Send + 'static) {
        self.0.lock().unwrap().fault = Some(Box::new(fault));
    }

    fn heal(&self) {
        self.0.lock().unwrap().fault = None;
    }

    /// The identity's topics by type, and its forwarding flag.
    fn identity(&self, name: &str) -> Option<(Vec<(String, String)>, bool)> {
        let state = self.0.lock().unwrap();
        state
            .identities
            .get(name)
            .map(|id| (id.topics.clone().into_iter().collect(), id.forwarding))
    }

    /// The calls since the last look, one line each.
    fn calls(&self) -> Vec<String> {
        let mut state = self.0.lock().unwrap();
        state.calls.drain(..).map(|c| summarize(&c)).collect()
    }
}

fn summarize(c: &Form) -> String {
    let get = |k: &str| c.get(k).cloned().unwrap_or_default();
    match get("Action").as_str() {
        "SetIdentityNotificationTopic" => format!(
            "topic {} {} {}",
            get("Identity"),
            get("NotificationType"),
            c.get("SnsTopic").map_or("unset", String::as_str)
        ),
        "SetIdentityHeadersInNotificationsEnabled" => format!(
            "headers {} {} {}",
            get("Identity"),
            get("NotificationType"),
            get("Enabled")
        ),
        "SetIdentityFeedbackForwardingEnabled" => {
            format!(
                "forwarding {} {}",
                get("Identity"),
                get("ForwardingEnabled")
            )
        }
        "GetIdentityNotificationAttributes" => {
            format!("get {}", get("Identities.member.1"))
        }
        other => other.to_owned(),
    }
}

fn topics(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// moto, the stand-in, a sink playing CloudFormation and a responder with
/// the type registered; `example.org` and `example.net` exist.
struct World {
    moto: Moto,
    ses: FakeSes,
    client: aws_sdk_ses::Client,
    sink: Sink,
    responder: Responder<LocalStore, HttpsPut>,
    /// When set, each request runs in a new execution environment whose
    /// owners are kept in this table.
    owners_table: Option<(aws_sdk_dynamodb::Client, &'static str)>,
}

fn responder(registry: Registry) -> Responder<LocalStore, HttpsPut> {
    Responder::new(
        registry,
        LocalStore::default(),
        HttpsPut::default(),
        Settings {
            url_policy: ResponseUrlPolicy { allow_local: true },
            ..Settings::default()
        },
    )
}

impl World {
    async fn start() -> Self {
        let moto = Moto::start();
        let (endpoint, ses) = FakeSes::start(&moto).await;
        let sdk = moto.sdk_config().await;
        let client = aws_sdk_ses::Client::from_conf(
            aws_sdk_ses::config::Builder::from(&sdk)
                .endpoint_url(&endpoint)
                .build(),
        );
        for domain in ["example.org", "example.net"] {
            client
                .verify_domain_identity()
                .domain(domain)
                .send()
                .await
                .unwrap();
        }
        ses.calls();
        let responder = responder(
            Registry::new().register(SesIdentityNotifications::new(SesV1(client.clone()))),
        );
        let sink = Sink::start(0).await.unwrap();
        Self {
            moto,
            ses,
            client,
            sink,
            responder,
            owners_table: None,
        }
    }

    /// From now on, every request runs in a new execution environment, with
    /// owners in a DynamoDB table.
    async fn owners_in_dynamodb(&mut self) {
        let db = self.moto.dynamodb().await;
        suite_tests::moto::create_table(&db, "idempotency", &["RequestId"]).await;
        self.owners_table = Some((db, "idempotency"));
    }

    /// Sends `event` (its RequestId must be unique) and returns the one answer.
    async fn play(&self, event: &Value) -> Value {
        let id = event["RequestId"].as_str().unwrap();
        let mut event = event.clone();
        event["ResponseURL"] = json!(self.sink.url(id));
        let deadline = Instant::now() + Duration::from_secs(30);
        match &self.owners_table {
            Some((db, table)) => responder(Registry::new().register(
                SesIdentityNotifications::with_owners(
                    SesV1(self.client.clone()),
                    DynamoOwners::new(db.clone(), *table),
                ),
            ))
            .handle(event.clone(), deadline)
            .await
            .unwrap(),
            None => self
                .responder
                .handle(event.clone(), deadline)
                .await
                .unwrap(),
        };
        the_one_response(&self.sink, id, &event)
    }

    /// Creates the resource `logical` in `stack`; returns its physical id.
    async fn create(&self, stack: &str, logical: &str, request_id: &str, props: Value) -> String {
        let mut event = request("Create", request_id, "", TYPE, props);
        event["StackId"] = json!(stack);
        event["LogicalResourceId"] = json!(logical);
        let created = self.play(&event).await;
        assert_eq!(created["Status"], "SUCCESS", "{created}");
        created["PhysicalResourceId"].as_str().unwrap().to_owned()
    }

    async fn delete(
        &self,
        stack: &str,
        logical: &str,
        request_id: &str,
        id: &str,
        props: Value,
    ) -> Value {
        let mut event = delete(request_id, "", TYPE, id, props);
        event["StackId"] = json!(stack);
        event["LogicalResourceId"] = json!(logical);
        self.play(&event).await
    }

    async fn set_topic(&self, identity: &str, kind: &str, topic: Option<&str>) {
        self.client
            .set_identity_notification_topic()
            .identity(identity)
            .notification_type(kind.into())
            .set_sns_topic(topic.map(str::to_owned))
            .send()
            .await
            .unwrap();
        self.ses.calls();
    }

    async fn set_forwarding(&self, identity: &str, enabled: bool) {
        self.client
            .set_identity_feedback_forwarding_enabled()
            .identity(identity)
            .forwarding_enabled(enabled)
            .send()
            .await
            .unwrap();
        self.ses.calls();
    }
}

fn props(identity: &str, bounce: &str, complaint: &str) -> Value {
    json!({"Identity": identity, "BounceTopic": bounce, "ComplaintTopic": complaint,
           "IncludeHeaders": "true"})
}

#[tokio::test]
async fn identity_notifications_lifecycle_against_moto() {
    let w = World::start().await;
    let id = w
        .create(STACK_ID, "Thing", "c", props("example.org", TOPIC, TOPIC))
        .await;
    assert_eq!(
        w.ses.calls(),
        [
            "get example.org",
            "topic example.org Bounce arn:aws:sns:us-east-1:123456789012:ses",
            "headers example.org Bounce true",
            "topic example.org Complaint arn:aws:sns:us-east-1:123456789012:ses",
            "headers example.org Complaint true",
        ]
    );

    let mut with_delivery = props("example.org", TOPIC, TOPIC);
    with_delivery["DeliveryTopic"] = json!("arn:aws:sns:us-east-1:123456789012:deliveries");
    let same = update(
        "u1",
        "",
        TYPE,
        &id,
        props("example.org", TOPIC, TOPIC),
        with_delivery.clone(),
    );
    let updated = w.play(&same).await;
    assert_eq!(
        (
            updated["Status"].as_str(),
            updated["PhysicalResourceId"].as_str()
        ),
        (Some("SUCCESS"), Some(id.as_str()))
    );
    assert!(w.ses.calls().contains(
        &"topic example.org Delivery arn:aws:sns:us-east-1:123456789012:deliveries".to_owned()
    ));

    // A new Identity is a replacement: a new id; CloudFormation then deletes the old.
    let moved = update(
        "u2",
        "",
        TYPE,
        &id,
        with_delivery.clone(),
        props("example.net", TOPIC, TOPIC),
    );
    let replaced = w.play(&moved).await;
    assert_eq!(replaced["Status"], "SUCCESS", "{replaced}");
    assert_ne!(replaced["PhysicalResourceId"].as_str(), Some(id.as_str()));
    assert!(w.ses.calls().iter().all(|c| c.contains("example.net")));

    let deleted = w.delete(STACK_ID, "Thing", "d", &id, with_delivery).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    // Forwarding is already on: nothing to re-enable.
    assert_eq!(
        w.ses.calls(),
        [
            "get example.org",
            "topic example.org Bounce unset",
            "topic example.org Complaint unset",
            "topic example.org Delivery unset",
        ]
    );
    assert_eq!(w.ses.identity("example.org"), Some((vec![], true)));

    // An unknown property: FAILED, naming it.
    let mut bad = props("example.org", TOPIC, TOPIC);
    bad["BounceTopics"] = json!("x");
    let failed = w.play(&request("Create", "bad", "", TYPE, bad)).await;
    assert_eq!(failed["Status"], "FAILED");
    assert!(
        failed["Reason"].as_str().unwrap().contains("BounceTopics"),
        "{failed}"
    );
}

/// Renaming the logical id: CloudFormation creates the new resource (which
/// sets the same topics again), then deletes the old one.
#[tokio::test]
async fn rename_keeps_the_topics_of_the_new_resource() {
    let w = World::start().await;
    let p = props("example.org", TOPIC, TOPIC);
    let old = w
        .create(STACK_ID, "Notifications", "c-old", p.clone())
        .await;
    let new = w.create(STACK_ID, "Renamed", "c-new", p.clone()).await;
    let deleted = w
        .delete(STACK_ID, "Notifications", "d-old", &old, p.clone())
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        w.ses.identity("example.org"),
        Some((topics(&[("Bounce", TOPIC), ("Complaint", TOPIC)]), true)),
        "the old resource's Delete cut off the new one"
    );

    // The last owner's Delete unsets them.
    let deleted = w.delete(STACK_ID, "Renamed", "d-new", &new, p).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(w.ses.identity("example.org"), Some((vec![], true)));
}

/// Two stacks route one identity: deleting either leaves the other's wiring.
#[tokio::test]
async fn two_stacks_on_one_identity() {
    let w = World::start().await;
    let p = props("example.org", TOPIC, TOPIC);
    let a = w.create(STACK_ID, "Notifications", "c-a", p.clone()).await;
    let b = w
        .create(OTHER_STACK, "Notifications", "c-b", p.clone())
        .await;
    // Forwarding off, as an operator would once both topics are set.
    w.set_forwarding("example.org", false).await;

    let deleted = w
        .delete(STACK_ID, "Notifications", "d-a", &a, p.clone())
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        w.ses.identity("example.org"),
        Some((topics(&[("Bounce", TOPIC), ("Complaint", TOPIC)]), false)),
        "deleting one stack cut the other off"
    );
    assert!(!w.ses.calls().iter().any(|c| c.starts_with("forwarding")));

    // The last owner unsets both, turning forwarding back on first.
    let deleted = w.delete(OTHER_STACK, "Notifications", "d-b", &b, p).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(w.ses.identity("example.org"), Some((vec![], true)));
    assert_eq!(
        w.ses.calls(),
        [
            "get example.org",
            "forwarding example.org true",
            "topic example.org Bounce unset",
            "topic example.org Complaint unset",
        ]
    );
}

/// A Create that fails after setting one topic undoes it before answering
/// FAILED: the rollback's Delete (of the failed-create id) touches nothing.
#[tokio::test]
async fn failed_create_undoes_what_it_set() {
    let w = World::start().await;
    // example.net already routes bounces somewhere: the undo puts it back.
    w.set_topic("example.net", "Bounce", Some(OTHER_TOPIC))
        .await;
    for (identity, before) in [
        ("example.org", vec![]),
        ("example.net", topics(&[("Bounce", OTHER_TOPIC)])),
    ] {
        w.ses.fail_when(|c| {
            c.get("NotificationType").map(String::as_str) == Some("Complaint")
                && c.contains_key("SnsTopic")
        });
        let p = props(identity, TOPIC, TOPIC);
        let create = request("Create", &format!("c-{identity}"), "", TYPE, p.clone());
        let failed = w.play(&create).await;
        assert_eq!(failed["Status"], "FAILED", "{failed}");
        assert!(
            failed["Reason"].as_str().unwrap().contains("Complaint"),
            "{failed}"
        );
        assert_eq!(
            w.ses.identity(identity),
            Some((before.clone(), true)),
            "the failed Create left what it set on {identity}"
        );
        w.ses.heal();
        let rollback = w
            .delete(
                STACK_ID,
                "Thing",
                &format!("d-{identity}"),
                failed["PhysicalResourceId"].as_str().unwrap(),
                p,
            )
            .await;
        assert_eq!(rollback["Status"], "SUCCESS", "{rollback}");
        assert_eq!(w.ses.identity(identity), Some((before, true)));
    }
}

/// The undo fails too: the Create still answers FAILED, naming what it left
/// set, and the rollback's Delete is still answered.
#[tokio::test]
async fn failed_create_whose_undo_fails_still_answers() {
    let w = World::start().await;
    w.ses.fail_when(|c| {
        c.get("NotificationType").map(String::as_str) == Some("Complaint")
            || (c.get("Action").map(String::as_str) == Some("SetIdentityNotificationTopic")
                && !c.contains_key("SnsTopic"))
    });
    let p = props("example.org", TOPIC, TOPIC);
    let failed = w.play(&request("Create", "c", "", TYPE, p.clone())).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    let reason = failed["Reason"].as_str().unwrap();
    assert!(
        reason.contains("Complaint") && reason.contains("undo") && reason.contains("Bounce"),
        "{reason}"
    );
    let rollback = w
        .delete(
            STACK_ID,
            "Thing",
            "d",
            failed["PhysicalResourceId"].as_str().unwrap(),
            p,
        )
        .await;
    assert_eq!(rollback["Status"], "SUCCESS", "{rollback}");
}

/// Someone else pointed Bounce at another topic: Delete leaves it, and
/// unsets only the Complaint topic it still owns.
#[tokio::test]
async fn delete_leaves_a_topic_someone_else_changed() {
    let w = World::start().await;
    let p = props("example.org", TOPIC, TOPIC);
    let id = w.create(STACK_ID, "Thing", "c", p.clone()).await;
    w.set_topic("example.org", "Bounce", Some(OTHER_TOPIC))
        .await;
    let deleted = w.delete(STACK_ID, "Thing", "d", &id, p.clone()).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        w.ses.identity("example.org"),
        Some((topics(&[("Bounce", OTHER_TOPIC)]), true))
    );

    // With forwarding off, unsetting Complaint alone would need forwarding
    // back on, which only unsetting both may do: Complaint stays, and the
    // Delete still succeeds.
    let id = w.create(STACK_ID, "Thing", "c2", p.clone()).await;
    w.set_topic("example.org", "Bounce", Some(OTHER_TOPIC))
        .await;
    w.set_forwarding("example.org", false).await;
    let deleted = w.delete(STACK_ID, "Thing", "d2", &id, p).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        w.ses.identity("example.org"),
        Some((
            topics(&[("Bounce", OTHER_TOPIC), ("Complaint", TOPIC)]),
            false
        ))
    );
}

/// An Update that changes a topic leaves nothing pointing at the old one;
/// one that keeps a topic does not take back a type someone else took.
#[tokio::test]
async fn update_moves_topics_without_stealing() {
    let w = World::start().await;
    let before = props("example.org", TOPIC, TOPIC);
    let id = w.create(STACK_ID, "Thing", "c", before.clone()).await;
    let mut after = props("example.org", OTHER_TOPIC, TOPIC);
    after["DeliveryTopic"] = json!(OTHER_TOPIC);
    let updated = w
        .play(&update("u", "", TYPE, &id, before, after.clone()))
        .await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(
        w.ses.identity("example.org"),
        Some((
            topics(&[
                ("Bounce", OTHER_TOPIC),
                ("Complaint", TOPIC),
                ("Delivery", OTHER_TOPIC)
            ]),
            true
        ))
    );

    // Someone else takes Complaint; an Update that only drops Delivery
    // must not take it back.
    w.set_topic(
        "example.org",
        "Complaint",
        Some("arn:aws:sns:us-east-1:123456789012:theirs"),
    )
    .await;
    let dropped = props("example.org", OTHER_TOPIC, TOPIC);
    let updated = w
        .play(&update("u2", "", TYPE, &id, after, dropped.clone()))
        .await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    let theirs = "arn:aws:sns:us-east-1:123456789012:theirs";
    assert_eq!(
        w.ses.identity("example.org"),
        Some((
            topics(&[("Bounce", OTHER_TOPIC), ("Complaint", theirs)]),
            true
        ))
    );

    let deleted = w.delete(STACK_ID, "Thing", "d", &id, dropped).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        w.ses.identity("example.org"),
        Some((topics(&[("Complaint", theirs)]), true))
    );
}

/// The identity was deleted from SES before the stack: Delete succeeds
/// without setting anything.
#[tokio::test]
async fn delete_when_the_identity_is_gone() {
    let w = World::start().await;
    let p = props("example.org", TOPIC, TOPIC);
    let id = w.create(STACK_ID, "Thing", "c", p.clone()).await;
    w.client
        .delete_identity()
        .identity("example.org")
        .send()
        .await
        .unwrap();
    w.ses.calls();
    let deleted = w.delete(STACK_ID, "Thing", "d", &id, p).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(w.ses.calls(), ["get example.org"]);

    // A Create on an identity that does not exist fails before setting anything.
    let missing = props("missing.example", TOPIC, TOPIC);
    let failed = w.play(&request("Create", "c2", "", TYPE, missing)).await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert!(
        failed["Reason"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{failed}"
    );
    assert_eq!(w.ses.calls(), ["get missing.example"]);
}

/// Both owners of one topic deleted at once, each in its own execution
/// environment: exactly one of them unsets, and both answer SUCCESS.
#[tokio::test]
async fn concurrent_deletes_of_two_owners() {
    let mut w = World::start().await;
    w.owners_in_dynamodb().await;
    let p = props("example.org", TOPIC, TOPIC);
    let a = w.create(STACK_ID, "Notifications", "c-a", p.clone()).await;
    let b = w
        .create(OTHER_STACK, "Notifications", "c-b", p.clone())
        .await;
    w.ses.calls();
    let (da, db) = tokio::join!(
        w.delete(STACK_ID, "Notifications", "d-a", &a, p.clone()),
        w.delete(OTHER_STACK, "Notifications", "d-b", &b, p.clone()),
    );
    assert_eq!(
        (da["Status"].as_str(), db["Status"].as_str()),
        (Some("SUCCESS"), Some("SUCCESS"))
    );
    assert_eq!(w.ses.identity("example.org"), Some((vec![], true)));
    let unsets = w
        .ses
        .calls()
        .iter()
        .filter(|c| c.ends_with("unset"))
        .count();
    assert_eq!(
        unsets, 2,
        "one Delete unsets Bounce and Complaint, the other nothing"
    );
}

/// The rename and two stacks again, each request in a new execution
/// environment: the owners live in the DynamoDB table, as deployed.
#[tokio::test]
async fn owners_in_dynamodb_outlive_the_execution_environment() {
    let mut w = World::start().await;
    w.owners_in_dynamodb().await;
    let p = props("example.org", TOPIC, TOPIC);
    let both = || Some((topics(&[("Bounce", TOPIC), ("Complaint", TOPIC)]), true));
    let old = w
        .create(STACK_ID, "Notifications", "c-old", p.clone())
        .await;
    let new = w.create(STACK_ID, "Renamed", "c-new", p.clone()).await;
    let other = w
        .create(OTHER_STACK, "Notifications", "c-other", p.clone())
        .await;
    for (stack, logical, id, request) in [
        (STACK_ID, "Notifications", &old, "d-old"),
        (STACK_ID, "Notifications", &old, "d-old-again"),
        (STACK_ID, "Renamed", &new, "d-new"),
    ] {
        let deleted = w.delete(stack, logical, request, id, p.clone()).await;
        assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
        assert_eq!(w.ses.identity("example.org"), both(), "after {request}");
    }
    let deleted = w
        .delete(OTHER_STACK, "Notifications", "d-other", &other, p)
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(w.ses.identity("example.org"), Some((vec![], true)));
}
