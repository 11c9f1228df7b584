//! Custom::SesIdentityNotifications against moto SES. moto lacks
//! SetIdentityHeadersInNotificationsEnabled and does not report topics back,
//! so a pass-through stand-in on 127.0.0.1 records every SES call (and
//! answers the headers call itself) while moto answers the rest.

mod common;

use cfn_responder::idempotency::MemoryStore;
use cfn_responder::resource::Registry;
use cfn_responder::resources::ses_identity_notifications::{SesIdentityNotifications, SesV1};
use cfn_responder::responder::{Responder, Settings};
use common::{delete, request, the_one_response, update};
use serde_json::{Value, json};
use shared::cfn::{HttpsPut, ResponseUrlPolicy};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use suite_tests::http::{Received, forward, reply, serve};
use suite_tests::moto::Moto;
use suite_tests::sink::Sink;
use tokio::time::Instant;

const TYPE: &str = "Custom::SesIdentityNotifications";

/// The form fields of each SES query call, in order.
type Calls = Arc<Mutex<Vec<HashMap<String, String>>>>;

async fn recording_proxy(moto: &Moto) -> (String, Calls) {
    let calls: Calls = Arc::default();
    let (seen, upstream) = (calls.clone(), moto.endpoint());
    let (addr, _task) = serve(0, move |request: Received| {
        let (seen, upstream) = (seen.clone(), upstream.clone());
        async move {
            let form: HashMap<String, String> = url_decode(&request.body);
            let action = form.get("Action").cloned().unwrap_or_default();
            seen.lock().unwrap().push(form);
            if action == "SetIdentityHeadersInNotificationsEnabled" {
                return reply(
                    200,
                    "<SetIdentityHeadersInNotificationsEnabledResponse xmlns=\"http://ses.amazonaws.com/doc/2010-12-01/\"><SetIdentityHeadersInNotificationsEnabledResult/><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></SetIdentityHeadersInNotificationsEnabledResponse>",
                );
            }
            forward(&request, &upstream).await
        }
    })
    .await
    .unwrap();
    (format!("http://{addr}"), calls)
}

/// The form fields of an SES query request.
fn url_decode(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| shared::s3_key::decode_notification_key(s).expect("form-encoded");
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn summary(calls: &Calls) -> Vec<String> {
    calls
        .lock()
        .unwrap()
        .drain(..)
        .map(|c| {
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
                other => other.to_owned(),
            }
        })
        .collect()
}

async fn play(
    responder: &Responder<MemoryStore, HttpsPut>,
    sink: &Sink,
    id: &str,
    event: &Value,
) -> Value {
    responder
        .handle(event.clone(), Instant::now() + Duration::from_secs(30))
        .await
        .unwrap();
    the_one_response(sink, id, event)
}

#[tokio::test]
async fn identity_notifications_lifecycle_against_moto() {
    let moto = Moto::start();
    let (endpoint, calls) = recording_proxy(&moto).await;
    let sdk = moto.sdk_config().await;
    let ses = aws_sdk_ses::Client::from_conf(
        aws_sdk_ses::config::Builder::from(&sdk)
            .endpoint_url(&endpoint)
            .build(),
    );
    ses.verify_domain_identity()
        .domain("example.org")
        .send()
        .await
        .unwrap();
    ses.verify_domain_identity()
        .domain("example.net")
        .send()
        .await
        .unwrap();
    summary(&calls);
    let sink = Sink::start(0).await.unwrap();
    let responder = Responder::new(
        Registry::new().register(SesIdentityNotifications::new(SesV1(ses))),
        MemoryStore::default(),
        HttpsPut::default(),
        Settings {
            url_policy: ResponseUrlPolicy { allow_local: true },
            ..Settings::default()
        },
    );
    let topics = |identity: &str| {
        json!({"Identity": identity, "BounceTopic": "arn:aws:sns:us-east-1:123456789012:ses",
               "ComplaintTopic": "arn:aws:sns:us-east-1:123456789012:ses", "IncludeHeaders": "true"})
    };

    let create = request("Create", "c", &sink.url("c"), TYPE, topics("example.org"));
    let created = play(&responder, &sink, "c", &create).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["Data"]["Identity"], "example.org");
    let id = created["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert_eq!(
        summary(&calls),
        [
            "topic example.org Bounce arn:aws:sns:us-east-1:123456789012:ses",
            "headers example.org Bounce true",
            "topic example.org Complaint arn:aws:sns:us-east-1:123456789012:ses",
            "headers example.org Complaint true",
        ]
    );

    let mut with_delivery = topics("example.org");
    with_delivery["DeliveryTopic"] = json!("arn:aws:sns:us-east-1:123456789012:deliveries");
    let same = update(
        "u1",
        &sink.url("u1"),
        TYPE,
        &id,
        topics("example.org"),
        with_delivery.clone(),
    );
    let updated = play(&responder, &sink, "u1", &same).await;
    assert_eq!(
        (
            updated["Status"].as_str(),
            updated["PhysicalResourceId"].as_str()
        ),
        (Some("SUCCESS"), Some(id.as_str()))
    );
    assert!(summary(&calls).contains(
        &"topic example.org Delivery arn:aws:sns:us-east-1:123456789012:deliveries".to_owned()
    ));

    // A new Identity is a replacement: a new id; CloudFormation then deletes the old.
    let moved = update(
        "u2",
        &sink.url("u2"),
        TYPE,
        &id,
        with_delivery.clone(),
        topics("example.net"),
    );
    let replaced = play(&responder, &sink, "u2", &moved).await;
    assert_eq!(replaced["Status"], "SUCCESS", "{replaced}");
    assert_ne!(replaced["PhysicalResourceId"].as_str(), Some(id.as_str()));
    assert!(summary(&calls).iter().all(|c| c.contains("example.net")));

    let old = delete("d", &sink.url("d"), TYPE, &id, with_delivery);
    let deleted = play(&responder, &sink, "d", &old).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        summary(&calls),
        [
            "forwarding example.org true",
            "topic example.org Bounce unset",
            "topic example.org Complaint unset",
            "topic example.org Delivery unset",
        ]
    );

    // An unknown property: FAILED, naming it.
    let mut bad = topics("example.org");
    bad["BounceTopics"] = json!("x");
    let sent = request("Create", "bad", &sink.url("bad"), TYPE, bad);
    let failed = play(&responder, &sink, "bad", &sent).await;
    assert_eq!(failed["Status"], "FAILED");
    assert!(
        failed["Reason"].as_str().unwrap().contains("BounceTopics"),
        "{failed}"
    );
}
