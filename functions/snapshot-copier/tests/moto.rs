//! The copier against moto, which copies across regions inside one server
//! (by the region in each request's signature); faults from a pass-through
//! stand-in in front of it.

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use snapshot_copier::aws::ec2::Ec2Regions;
use snapshot_copier::config::Config;
use snapshot_copier::copier::{Copier, Settings};
use snapshot_copier::retention::Retention;
use snapshot_copier::snapshot::{
    MANAGED_BY_TAG, MANAGED_BY_VALUE, SOURCE_ID_TAG, SOURCE_REGION_TAG, SOURCE_START_TIME_TAG,
    SOURCE_VOLUME_TAG,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use suite_tests::http::{Received, forward, forward_rewriting, reply, serve};
use suite_tests::moto::Moto;

fn settings() -> Settings {
    Settings {
        source_region: "us-east-1".into(),
        default_destinations: vec!["eu-west-1".into()],
        concurrency: 4,
        ..Config::default().copier
    }
}

async fn client(sdk: &aws_config::SdkConfig, region: &str) -> Client {
    Client::new(&shared::aws::config_for_region(sdk, region))
}

fn tags(pairs: &[(&str, &str)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(ResourceType::Snapshot)
        .set_tags(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

/// A snapshot of a new volume in `ec2`'s region; returns (snapshot, volume).
async fn snapshot(ec2: &Client, encrypted: bool, pairs: &[(&str, &str)]) -> (String, String) {
    let region = ec2.config().region().unwrap().to_string();
    let volume = ec2
        .create_volume()
        .availability_zone(format!("{region}a"))
        .size(1)
        .encrypted(encrypted)
        .send()
        .await
        .unwrap();
    let volume_id = volume.volume_id().unwrap().to_owned();
    let mut call = ec2.create_snapshot().volume_id(&volume_id);
    if !pairs.is_empty() {
        call = call.tag_specifications(tags(pairs));
    }
    let snap = call.send().await.unwrap();
    (snap.snapshot_id().unwrap().to_owned(), volume_id)
}

/// The snapshots in a region, by id, with their tags.
async fn listing(
    ec2: &Client,
) -> HashMap<String, (HashMap<String, String>, aws_sdk_ec2::types::Snapshot)> {
    ec2.describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .map(|s| {
            let tags = s
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
                .collect();
            (s.snapshot_id().unwrap().to_owned(), (tags, s.clone()))
        })
        .collect()
}

fn copies_of<'a>(
    listing: &'a HashMap<String, (HashMap<String, String>, aws_sdk_ec2::types::Snapshot)>,
    source: &str,
) -> Vec<&'a (HashMap<String, String>, aws_sdk_ec2::types::Snapshot)> {
    listing
        .values()
        .filter(|(tags, _)| tags.get(SOURCE_ID_TAG).map(String::as_str) == Some(source))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_to_two_regions_with_tags_once_and_ignores_the_untagged() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = client(&sdk, "us-east-1").await;
    let (source, volume) = snapshot(
        &east,
        false,
        &[("dr:copy-to", "us-west-2, eu-west-1"), ("team", "db")],
    )
    .await;
    let (untagged, _) = snapshot(&east, false, &[("team", "web")]).await;
    let copier = Copier::new(Ec2Regions::new(sdk.clone()), settings());

    let first = copier.sweep().await;
    assert!(first.errors.is_empty(), "{first:?}");
    assert_eq!(first.copied.len(), 2);
    let ignored = copier.copy_snapshot(&untagged).await.ignored;
    assert!(ignored[0].starts_with(&untagged), "{ignored:?}");
    for region in ["us-west-2", "eu-west-1"] {
        let listing = listing(&client(&sdk, region).await).await;
        assert!(copies_of(&listing, &untagged).is_empty());
        let copies = copies_of(&listing, &source);
        assert_eq!(copies.len(), 1, "{region}");
        let (tags, copy) = copies[0];
        assert_eq!(tags["team"], "db");
        assert_eq!(tags[SOURCE_REGION_TAG], "us-east-1");
        assert_eq!(tags[SOURCE_VOLUME_TAG], volume);
        assert_eq!(tags[MANAGED_BY_TAG], MANAGED_BY_VALUE);
        assert!(!tags.contains_key("dr:copy-to"));
        assert!(copy.description().unwrap().contains(&source));
    }
    // The event path and a second sweep find the copies and make none.
    assert_eq!(
        copier.copy_snapshot(&source).await.skipped_existing.len(),
        2
    );
    let again = copier.sweep().await;
    assert_eq!((again.copied.len(), again.skipped_existing.len()), (0, 2));
    for region in ["us-west-2", "eu-west-1"] {
        assert_eq!(
            copies_of(&listing(&client(&sdk, region).await).await, &source).len(),
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_encrypted_source_gets_the_mapped_key() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = client(&sdk, "us-east-1").await;
    let (source, _) = snapshot(&east, true, &[("dr:copy-to", "us-west-2")]).await;
    let key = "arn:aws:kms:us-west-2:123456789012:key/0b5e1f6c-1111-2222-3333-444455556666";
    let copier = Copier::new(
        Ec2Regions::new(sdk.clone()),
        Settings {
            kms_keys: BTreeMap::from([("us-west-2".into(), key.into())]),
            ..settings()
        },
    );
    assert_eq!(copier.sweep().await.copied.len(), 1);
    let listing = listing(&client(&sdk, "us-west-2").await).await;
    let (_, copy) = copies_of(&listing, &source)[0];
    assert_eq!(copy.encrypted(), Some(true));
    assert_eq!(copy.kms_key_id(), Some(key));
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_spares_unmanaged_snapshots_and_dry_run_changes_nothing() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = client(&sdk, "us-east-1").await;
    let west = client(&sdk, "us-west-2").await;
    snapshot(&east, false, &[("dr:copy-to", "us-west-2")]).await;
    // Copies of three sources gone since, older than the live one.
    let mut old = Vec::new();
    for (source, started) in [
        ("snap-00000000000000old1", "1000000000"),
        ("snap-00000000000000old2", "1000086400"),
        ("snap-00000000000000old3", "1000172800"),
    ] {
        let managed = [
            (MANAGED_BY_TAG, MANAGED_BY_VALUE),
            (SOURCE_REGION_TAG, "us-east-1"),
            (SOURCE_VOLUME_TAG, "vol-0123456789abcdef0"),
            (SOURCE_ID_TAG, source),
            (SOURCE_START_TIME_TAG, started),
        ];
        old.push(snapshot(&west, false, &managed).await.0);
    }
    let (unmanaged, _) = snapshot(
        &west,
        false,
        &[(SOURCE_VOLUME_TAG, "vol-0123456789abcdef0")],
    )
    .await;
    let keep_one = Settings {
        retention: Retention {
            keep: Some(1),
            max_age_secs: None,
        },
        ..settings()
    };

    let before = listing(&west).await.len();
    let dry = Copier::new(
        Ec2Regions::new(sdk.clone()),
        Settings {
            dry_run: true,
            ..keep_one.clone()
        },
    );
    let plan = dry.sweep().await;
    assert_eq!(
        plan.dry_run_plan.len(),
        1 + 2,
        "one copy, two deletions: {plan:?}"
    );
    assert_eq!(
        listing(&west).await.len(),
        before,
        "a dry run changes nothing"
    );

    let done = Copier::new(Ec2Regions::new(sdk.clone()), keep_one)
        .sweep()
        .await;
    assert!(done.errors.is_empty(), "{done:?}");
    assert_eq!(done.pruned.len(), 2);
    let after = listing(&west).await;
    assert!(
        after.contains_key(&unmanaged),
        "unmanaged snapshots survive"
    );
    assert!(
        after.contains_key(&old[2]),
        "the newest completed restore point of the volume stays"
    );
    assert_eq!(old.iter().filter(|id| after.contains_key(*id)).count(), 1);
}

/// Forwards to moto, answering the `fail_copy`-th CopySnapshot with
/// ResourceLimitExceeded and showing `errored` snapshots in state error.
async fn fault_proxy(moto: &Moto, fail_copy: usize, errored: Arc<Mutex<Vec<String>>>) -> String {
    let copies = Arc::new(Mutex::new(0usize));
    let upstream = moto.endpoint();
    let (addr, _task) = serve(0, move |request: Received| {
        let (copies, upstream, errored) = (copies.clone(), upstream.clone(), errored.clone());
        async move {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            if body.contains("Action=CopySnapshot") {
                let n = {
                    let mut copies = copies.lock().unwrap();
                    *copies += 1;
                    *copies
                };
                if n == fail_copy {
                    return reply(
                        400,
                        "<Response><Errors><Error><Code>ResourceLimitExceeded</Code><Message>too many snapshot copies in progress</Message></Error></Errors><RequestID>r</RequestID></Response>",
                    );
                }
            }
            if !body.contains("Action=DescribeSnapshots") {
                return forward(&request, &upstream).await;
            }
            let errored = errored.lock().unwrap().clone();
            forward_rewriting(&request, &upstream, move |mut xml| {
                for id in errored {
                    let marker = format!("<snapshotId>{id}</snapshotId>");
                    if let Some(start) = xml.find(&marker)
                        && let Some(end) = xml[start..].find("</item>")
                    {
                        let item = xml[start..start + end]
                            .replace("<status>completed</status>", "<status>error</status>");
                        xml.replace_range(start..start + end, &item);
                    }
                }
                xml
            })
            .await
        }
    })
    .await
    .unwrap();
    format!("http://{addr}")
}

async fn sdk_via(endpoint: &str) -> aws_config::SdkConfig {
    // The stand-in's faults must reach the copier, not the SDK's retries.
    suite_tests::moto::local_sdk_config(endpoint)
        .await
        .to_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_copy_limit_defers_and_a_later_sweep_completes_without_duplicates() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = client(&sdk, "us-east-1").await;
    let mut sources = Vec::new();
    for _ in 0..5 {
        sources.push(
            snapshot(&east, false, &[("dr:copy-to", "us-west-2")])
                .await
                .0,
        );
    }
    let proxy = fault_proxy(&moto, 3, Arc::default()).await;
    let copier = Copier::new(
        Ec2Regions::new(sdk_via(&proxy).await),
        Settings {
            concurrency: 1,
            ..settings()
        },
    );
    let first = copier.sweep().await;
    assert!(first.errors.is_empty(), "{first:?}");
    assert_eq!(
        (first.copied.len(), first.deferred.len()),
        (2, 3),
        "the third copy hit the limit"
    );
    let second = copier.sweep().await;
    assert_eq!(
        (second.copied.len(), second.skipped_existing.len()),
        (3, 2),
        "{second:?}"
    );
    let west = listing(&client(&sdk, "us-west-2").await).await;
    for source in &sources {
        assert_eq!(
            copies_of(&west, source).len(),
            1,
            "{source}: exactly one copy"
        );
    }
}

/// Forwards to moto, but answers the first CopySnapshot (which moto carries
/// out) with a 500, and leaves the copy out of DescribeSnapshots while
/// `unlisted` holds (EC2's listings are eventually consistent).
async fn lost_copy_proxy(moto: &Moto, unlisted: Arc<Mutex<bool>>) -> String {
    let lost: Arc<Mutex<Option<String>>> = Arc::default();
    let upstream = moto.endpoint();
    let (addr, _task) = serve(0, move |request: Received| {
        let (lost, upstream, unlisted) = (lost.clone(), upstream.clone(), unlisted.clone());
        async move {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            if body.contains("Action=CopySnapshot") && lost.lock().unwrap().is_none() {
                let made = lost.clone();
                forward_rewriting(&request, &upstream, move |xml| {
                    *made.lock().unwrap() = between(&xml, "<snapshotId>", "</snapshotId>");
                    xml
                })
                .await;
                assert!(lost.lock().unwrap().is_some(), "moto made the copy");
                return reply(
                    500,
                    "<Response><Errors><Error><Code>InternalError</Code><Message>lost</Message></Error></Errors><RequestID>r</RequestID></Response>",
                );
            }
            let hidden = lost.lock().unwrap().clone().filter(|_| *unlisted.lock().unwrap());
            match hidden {
                Some(id) if body.contains("Action=DescribeSnapshots") => {
                    forward_rewriting(&request, &upstream, move |xml| without_item(xml, &id)).await
                }
                _ => forward(&request, &upstream).await,
            }
        }
    })
    .await
    .unwrap();
    format!("http://{addr}")
}

fn between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)?;
    Some(text[start..start + end].to_owned())
}

/// `xml` without the `<item>` of snapshot `id` (its tags are nested items).
fn without_item(mut xml: String, id: &str) -> String {
    let Some(marker) = xml.find(&format!("<snapshotId>{id}</snapshotId>")) else {
        return xml;
    };
    let Some(start) = xml[..marker].rfind("<item>") else {
        return xml;
    };
    let mut depth = 0;
    let mut at = start;
    while let Some(next) = xml[at..].find("item>").map(|i| at + i) {
        if xml[..next].ends_with("</") {
            depth -= 1;
        } else if xml[..next].ends_with('<') {
            depth += 1;
        }
        at = next + "item>".len();
        if depth == 0 {
            xml.replace_range(start..at, "");
            break;
        }
    }
    xml
}

/// CopySnapshot made the copy but its answer was lost (a 500): neither the
/// SDK nor a later sweep copies again, even while listings lag.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_copy_answer_is_neither_retried_nor_copied_again() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = client(&sdk, "us-east-1").await;
    let (source, _) = snapshot(&east, false, &[("dr:copy-to", "us-west-2")]).await;
    let unlisted = Arc::new(Mutex::new(true));
    let proxy = lost_copy_proxy(&moto, unlisted.clone()).await;
    // The SDK's default retries stay on: CopySnapshot must opt out itself.
    let copier = Copier::new(
        Ec2Regions::new(suite_tests::moto::local_sdk_config(&proxy).await),
        settings(),
    );
    let west = client(&sdk, "us-west-2").await;
    let first = copier.sweep().await;
    assert_eq!(
        copies_of(&listing(&west).await, &source).len(),
        1,
        "the SDK did not retry: {first:?}"
    );
    assert!(first.errors[0].contains("outcome unknown"), "{first:?}");
    let second = copier.sweep().await;
    assert!(second.copied.is_empty(), "{second:?}");
    assert_eq!(second.skipped_existing.len(), 1, "{second:?}");
    *unlisted.lock().unwrap() = false;
    let third = copier.sweep().await;
    assert!(
        third.copied.is_empty() && third.errors.is_empty(),
        "{third:?}"
    );
    assert_eq!(
        copies_of(&listing(&west).await, &source).len(),
        1,
        "exactly one copy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_in_error_is_deleted_and_made_again() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = client(&sdk, "us-east-1").await;
    let (source, _) = snapshot(&east, false, &[("dr:copy-to", "us-west-2")]).await;
    let errored = Arc::new(Mutex::new(Vec::new()));
    let proxy = fault_proxy(&moto, 0, errored.clone()).await;
    let copier = Copier::new(Ec2Regions::new(sdk_via(&proxy).await), settings());
    let first = copier.copy_snapshot(&source).await;
    let broken = first.copied[0].copy.clone().unwrap();
    errored.lock().unwrap().push(broken.clone());
    let retried = copier.sweep().await;
    assert_eq!(retried.retried_after_error.len(), 1, "{retried:?}");
    let west = listing(&client(&sdk, "us-west-2").await).await;
    assert!(!west.contains_key(&broken), "the failed copy is deleted");
    assert_eq!(copies_of(&west, &source).len(), 1);
}

mod binary {
    use super::*;
    use serde_json::{Value, json};
    use std::path::Path;
    use std::time::Duration;
    use suite_tests::dynamodb::{DynamoStandIn, Faults};
    use suite_tests::running::{Env, Running};

    const BINARY: &str = env!("CARGO_BIN_EXE_snapshot-copier");
    /// Each invocation's time: moto's EC2 is slow to copy.
    const TIME: Duration = Duration::from_secs(60);

    fn sample(name: &str) -> Value {
        suite_tests::events::sample(snapshot_copier::FUNCTION_NAME, name)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_sample_events_through_the_binary() {
        let moto = Moto::start();
        let sdk = moto.sdk_config().await;
        let east = client(&sdk, "us-east-1").await;
        let (source, _) = snapshot(&east, false, &[("dr:copy-to", "true")]).await;
        let env = Env::from(moto.env()).set("DEFAULT_DESTINATIONS", "us-west-2");
        let function = Running::start(BINARY, &env).await;
        let function = &function;
        let invoke = |event: Value| async move { function.invoke_within(event, TIME).await.result };

        let mut created = sample("01-create-snapshot-succeeded.json");
        created["detail"]["snapshot_id"] =
            json!(format!("arn:aws:ec2::us-east-1:snapshot/{source}"));
        let answer = invoke(created).await.unwrap();
        assert_eq!(answer["copied"][0]["source"], source.as_str(), "{answer}");
        assert_eq!(answer["copied"][0]["region"], "us-west-2");
        let copy = answer["copied"][0]["copy"].as_str().unwrap().to_owned();

        let failed = invoke(sample("02-create-snapshot-failed.json"))
            .await
            .unwrap();
        assert_eq!(failed["ignored"][0], "createSnapshot failed");

        // createSnapshots names snapshots moto does not have: ignored, not failed.
        let multi = invoke(sample("03-create-snapshots-multi-volume.json"))
            .await
            .unwrap();
        assert_eq!(multi["ignored"].as_array().unwrap().len(), 2, "{multi}");

        let sweep = invoke(sample("04-scheduled-sweep.json")).await.unwrap();
        assert_eq!(
            sweep["skipped_existing"][0]["copy"],
            copy.as_str(),
            "{sweep}"
        );
        assert!(sweep["copied"].as_array().unwrap().is_empty());

        let mut done = sample("05-copy-snapshot-completed.json");
        done["detail"]["snapshot_id"] = json!(format!("arn:aws:ec2::us-west-2:snapshot/{copy}"));
        let done = invoke(done).await.unwrap();
        assert_eq!(
            done["completions"][0],
            format!("us-west-2/{copy}: succeeded")
        );

        let error = invoke(json!({"detail-type": "Object Created", "detail": {}}))
            .await
            .unwrap_err();
        assert_eq!(error["errorType"], "UnsupportedEvent");
    }

    /// Two sweeps and two createSnapshot events per source, all at once,
    /// each in its own function process (as Lambda scales out).
    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_sweeps_and_duplicate_events_make_one_copy_per_source() {
        let moto = Moto::start();
        let sdk = moto.sdk_config().await;
        let east = client(&sdk, "us-east-1").await;
        let mut sources = Vec::new();
        for _ in 0..3 {
            sources.push(
                snapshot(&east, false, &[("dr:copy-to", "us-west-2")])
                    .await
                    .0,
            );
        }
        // Claims go to the kit's stand-in, whose conditional writes are
        // atomic as DynamoDB's are; moto's check then write without a lock,
        // so two claims could both succeed there by timing alone.
        let claims =
            DynamoStandIn::start(&[("copy-claims", &["claim"])], Faults::none(Duration::ZERO))
                .await
                .unwrap();
        let env = Env::from(moto.env())
            .set("AWS_ENDPOINT_URL_DYNAMODB", &claims.endpoint())
            .set("CLAIM_TABLE", "copy-claims");
        let mut events = vec![sample("04-scheduled-sweep.json"); 2];
        for source in sources.iter().chain(&sources) {
            let mut created = sample("01-create-snapshot-succeeded.json");
            created["detail"]["snapshot_id"] =
                json!(format!("arn:aws:ec2::us-east-1:snapshot/{source}"));
            events.push(created);
        }
        let functions = Running::start_many(BINARY, &env, events.len()).await;
        let functions = &functions;
        let answers = futures_util::future::join_all(
            events
                .into_iter()
                .map(|e| async move { functions.invoke_within(e, TIME).await.result }),
        )
        .await;
        let mut copied = 0;
        for answer in &answers {
            let answer = answer.as_ref().expect("every invocation succeeds");
            copied += answer["copied"].as_array().unwrap().len();
        }
        let west = listing(&client(&sdk, "us-west-2").await).await;
        for source in &sources {
            assert_eq!(
                copies_of(&west, source).len(),
                1,
                "{source}: exactly one copy, {answers:?}"
            );
        }
        assert_eq!(copied, 3, "{answers:?}");
        // The claims were taken in the stand-in, each recording its copy.
        let recorded: HashMap<String, String> = claims
            .items("copy-claims")
            .into_values()
            .map(|item| {
                let text = |k: &str| item[k]["S"].as_str().unwrap_or_default().to_owned();
                (text("claim"), text("copy_id"))
            })
            .collect();
        assert_eq!(recorded.len(), sources.len(), "{recorded:?}");
        for source in &sources {
            let (_, copy) = copies_of(&west, source)[0];
            assert_eq!(
                recorded[&format!("us-east-1/{source}/us-west-2")],
                copy.snapshot_id().unwrap(),
                "{recorded:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn bad_configuration_fails_init_naming_every_variable() {
        suite_tests::function::assert_init_fails_naming(
            Path::new(BINARY),
            &[
                ("DEST_KMS_KEYS", "alias/dr"),
                ("MAX_CONCURRENT_COPIES", "0"),
            ],
            &["DEST_KMS_KEYS", "MAX_CONCURRENT_COPIES"],
        )
        .await;
    }
}

/// Snapshots of one new volume in `ec2`'s region, oldest first.
/// `count` snapshots of one new volume, a second or more apart; returns the
/// volume and the snapshots, oldest first.
async fn snapshots_of_one_volume(
    ec2: &Client,
    count: usize,
    pairs: &[(&str, &str)],
) -> (String, Vec<String>) {
    let region = ec2.config().region().unwrap().to_string();
    let volume = ec2
        .create_volume()
        .availability_zone(format!("{region}a"))
        .size(1)
        .send()
        .await
        .unwrap();
    let volume = volume.volume_id().unwrap().to_owned();
    let mut ids = Vec::new();
    for _ in 0..count {
        ids.push(later_snapshot(ec2, &volume, pairs).await);
    }
    (volume, ids)
}

/// A snapshot of `volume` whose start time is a later second than any made
/// before: moto stamps StartTime with the time of the call, and the copier
/// ranks by whole seconds.
async fn later_snapshot(ec2: &Client, volume: &str, pairs: &[(&str, &str)]) -> String {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let snap = ec2
        .create_snapshot()
        .volume_id(volume)
        .tag_specifications(tags(pairs))
        .send()
        .await
        .unwrap();
    snap.snapshot_id().unwrap().to_owned()
}

/// Sources ranked as retention ranks them: newest start time first, ties by id.
async fn newest_first(ec2: &Client, ids: &[String]) -> Vec<String> {
    let out = ec2
        .describe_snapshots()
        .set_snapshot_ids(Some(ids.to_vec()))
        .send()
        .await
        .unwrap();
    let mut ranked: Vec<(i64, String)> = out
        .snapshots()
        .iter()
        .map(|s| {
            (
                s.start_time().unwrap().secs(),
                s.snapshot_id().unwrap().to_owned(),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    ranked.into_iter().map(|(_, id)| id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_sweeps_keep_the_newest_restore_points_and_reach_a_fixed_point() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = client(&sdk, "us-east-1").await;
    let west = client(&sdk, "us-west-2").await;
    let wanted = [("dr:copy-to", "us-west-2")];
    let (volume, mut sources) = snapshots_of_one_volume(&east, 6, &wanted).await;
    // moto's ids are random: ranking by id alone must keep other restore
    // points than ranking by start time, or the test proves nothing. While
    // it would not, one more, newer snapshot changes the newest two.
    let kept = loop {
        let kept: Vec<String> = newest_first(&east, &sources).await[..2].to_vec();
        let mut by_id = sources.clone();
        by_id.sort();
        if !by_id[..2].contains(&kept[0]) || !by_id[..2].contains(&kept[1]) {
            break kept;
        }
        sources.push(later_snapshot(&east, &volume, &wanted).await);
    };
    let newest: Vec<String> = sources.iter().rev().take(2).cloned().collect();
    assert_eq!(kept, newest, "the start times follow the order of creation");
    let copier = Copier::new(
        Ec2Regions::new(sdk.clone()),
        Settings {
            retention: Retention {
                keep: Some(2),
                max_age_secs: None,
            },
            ..settings()
        },
    );
    let mut made = Vec::new();
    for sweep in 1..=3 {
        let summary = copier.sweep().await;
        assert!(summary.errors.is_empty(), "sweep {sweep}: {summary:?}");
        made.push((summary.copied.len(), summary.pruned.len()));
        let listing = listing(&west).await;
        let mut copied: Vec<String> = sources
            .iter()
            .filter(|s| !copies_of(&listing, s).is_empty())
            .cloned()
            .collect();
        copied.sort();
        let mut expected = kept.clone();
        expected.sort();
        assert_eq!(
            copied, expected,
            "sweep {sweep}: the newest two restore points"
        );
        for (tags, _) in listing
            .values()
            .filter(|(t, _)| t.contains_key(SOURCE_ID_TAG))
        {
            assert!(
                tags.contains_key(SOURCE_START_TIME_TAG),
                "the copy records its source's start time: {tags:?}"
            );
        }
    }
    assert_eq!(
        made,
        vec![(2, 0), (0, 0), (0, 0)],
        "(copied, pruned) per sweep: one sweep reaches the fixed point"
    );
}

/// The claim store's real requests against moto's condition evaluator, one
/// call at a time (moto's conditional writes are not atomic: no call here
/// overlaps another), and the same sequence against the kit's stand-in that
/// the concurrent test relies on, so the two evaluators are held to agree.
#[tokio::test(flavor = "multi_thread")]
async fn claims_in_dynamodb_follow_their_conditions() {
    use snapshot_copier::aws::dynamodb::DynamoClaims;
    let moto = Moto::start();
    let client = moto.dynamodb().await;
    suite_tests::moto::create_table(&client, "copy-claims", &["claim"]).await;
    follow_conditions(DynamoClaims {
        client,
        table: "copy-claims".into(),
    })
    .await;

    let stand_in = suite_tests::dynamodb::DynamoStandIn::start(
        &[("copy-claims", &["claim"])],
        suite_tests::dynamodb::Faults::none(std::time::Duration::ZERO),
    )
    .await
    .unwrap();
    let client = aws_sdk_dynamodb::Client::new(
        &suite_tests::moto::local_sdk_config(&stand_in.endpoint()).await,
    );
    follow_conditions(DynamoClaims {
        client,
        table: "copy-claims".into(),
    })
    .await;
}

async fn follow_conditions(claims: snapshot_copier::aws::dynamodb::DynamoClaims) {
    use snapshot_copier::ports::{Claim, Claims, Condition};
    let now = 1_000_000;
    let claim = |holder: &str, copy: Option<&str>, expires_at: i64| Claim {
        holder: holder.into(),
        copy_id: copy.map(str::to_owned),
        lease_until: now + 900,
        expires_at,
    };
    let free = Condition::Free { now };
    let key = "us-east-1/snap-1/us-west-2";
    assert!(
        claims
            .put_if(key, &claim("a", None, now + 10), &free)
            .await
            .unwrap()
    );
    assert!(
        !claims
            .put_if(key, &claim("b", None, now + 10), &free)
            .await
            .unwrap()
    );
    claims.release(key, "b").await.unwrap();
    assert_eq!(
        claims.get(key).await.unwrap().unwrap().holder,
        "a",
        "only the holder releases"
    );
    let held_by_a = Condition::HeldWithoutCopy("a".into());
    assert!(
        claims
            .put_if(key, &claim("a", Some("snap-c1"), now + 10), &held_by_a)
            .await
            .unwrap()
    );
    assert!(
        !claims
            .put_if(key, &claim("a", Some("snap-c2"), now + 10), &held_by_a)
            .await
            .unwrap()
    );
    claims.release(key, "a").await.unwrap();
    assert_eq!(
        claims.get(key).await.unwrap().unwrap().copy_id.as_deref(),
        Some("snap-c1")
    );
    let replacing = Condition::CopyIs("snap-c1".into());
    assert!(
        claims
            .put_if(key, &claim("c", None, now + 10), &replacing)
            .await
            .unwrap()
    );
    assert!(
        !claims
            .put_if(key, &claim("d", None, now + 10), &replacing)
            .await
            .unwrap()
    );
    let later = Condition::Free { now: now + 11 };
    assert!(
        claims
            .put_if(key, &claim("e", None, now + 100), &later)
            .await
            .unwrap(),
        "an expired claim is free"
    );
    claims.release(key, "e").await.unwrap();
    assert_eq!(claims.get(key).await.unwrap(), None);
}

/// Forwards to moto, refusing CopySnapshot as EC2 does and moto does not
/// when its tag specification repeats a key.
async fn strict_tags_proxy(moto: &Moto) -> String {
    let upstream = moto.endpoint();
    let (addr, _task) = serve(0, move |request: Received| {
        let upstream = upstream.clone();
        async move {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            if body.contains("Action=CopySnapshot") {
                let keys: Vec<String> = suite_tests::form::pairs(&request.body)
                    .into_iter()
                    .filter(|(name, _)| name.starts_with("TagSpecification.") && name.ends_with(".Key"))
                    .map(|(_, value)| value)
                    .collect();
                let distinct: std::collections::HashSet<&String> = keys.iter().collect();
                if distinct.len() != keys.len() {
                    return reply(
                        400,
                        "<Response><Errors><Error><Code>InvalidParameterValue</Code><Message>Duplicate tag key</Message></Error></Errors><RequestID>r</RequestID></Response>",
                    );
                }
            }
            forward(&request, &upstream).await
        }
    })
    .await
    .unwrap();
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_with_our_tags_or_too_many_tags_are_copied_with_a_warning() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = client(&sdk, "us-east-1").await;
    let many: Vec<(String, String)> = (0..49)
        .map(|i| (format!("k{i:02}"), format!("v{i}")))
        .collect();
    let mut pairs: Vec<(&str, &str)> = vec![("dr:copy-to", "us-west-2")];
    pairs.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (crowded, _) = snapshot(&east, false, &pairs).await;
    let (relayed, _) = snapshot(
        &east,
        false,
        &[
            ("dr:copy-to", "us-west-2"),
            (SOURCE_ID_TAG, "snap-0upstream"),
            (SOURCE_REGION_TAG, "eu-central-1"),
            ("dr:tier", "gold"),
        ],
    )
    .await;
    let (plain, _) = snapshot(&east, false, &[("dr:copy-to", "us-west-2"), ("team", "db")]).await;
    let proxy = strict_tags_proxy(&moto).await;
    let copier = Copier::new(Ec2Regions::new(sdk_via(&proxy).await), settings());

    let first = copier.sweep().await;
    assert!(first.errors.is_empty(), "{first:?}");
    assert_eq!(first.copied.len(), 3, "{first:?}");
    let note = |source: &str| {
        first
            .copied
            .iter()
            .find(|p| p.source == source)
            .and_then(|p| p.note.clone())
            .unwrap_or_default()
    };
    assert!(
        note(&crowded).contains("k48"),
        "the trimmed tags are named: {first:?}"
    );
    assert!(
        note(&relayed).contains(SOURCE_ID_TAG),
        "the renamed tags are named: {first:?}"
    );
    assert!(note(&plain).is_empty());

    let west = listing(&client(&sdk, "us-west-2").await).await;
    let (tags, _) = copies_of(&west, &crowded)[0];
    assert_eq!(tags.len(), 50, "EC2's limit, ours all present: {tags:?}");
    assert!(tags[SOURCE_VOLUME_TAG].starts_with("vol-"));
    assert!(tags.contains_key("k00"));
    let (tags, _) = copies_of(&west, &relayed)[0];
    assert_eq!(tags[SOURCE_ID_TAG], relayed);
    assert_eq!(tags[SOURCE_REGION_TAG], "us-east-1");
    assert_eq!(tags[&format!("source:{SOURCE_ID_TAG}")], "snap-0upstream");
    assert_eq!(tags[&format!("source:{SOURCE_REGION_TAG}")], "eu-central-1");
    assert_eq!(tags["dr:tier"], "gold");
    assert_eq!(copies_of(&west, &plain)[0].0["team"], "db");

    let again = copier.sweep().await;
    assert_eq!(
        (again.copied.len(), again.errors.len()),
        (0, 0),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_snapshot_is_absent_and_deleting_it_is_done() {
    use snapshot_copier::ports::{Regions, SnapshotApi};
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let east = Ec2Regions::new(sdk.clone()).region("us-east-1");
    let unknown = "snap-0123456789abcdef0";
    assert_eq!(east.describe(unknown).await, Ok(None));
    assert_eq!(east.delete(unknown).await, Ok(()));
    let (known, _) = snapshot(&client(&sdk, "us-east-1").await, false, &[]).await;
    let described = east.describe(&known).await.unwrap().expect("a snapshot");
    assert_eq!(described.id, known);
    assert_eq!(east.delete(&known).await, Ok(()));
    assert_eq!(east.describe(&known).await, Ok(None));
}
