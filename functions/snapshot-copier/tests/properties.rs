//! Tag values and the retention planner, over arbitrary input.

use proptest::prelude::*;
use snapshot_copier::destinations::{is_region, parse};
use snapshot_copier::retention::{Plan, Retention, plan};
use snapshot_copier::snapshot::{
    MANAGED_BY_TAG, MANAGED_BY_VALUE, SOURCE_ID_TAG, SOURCE_START_TIME_TAG, SOURCE_VOLUME_TAG,
    Snapshot, State,
};
use std::collections::HashSet;

const DAY: i64 = 86_400;

fn state() -> impl Strategy<Value = State> {
    prop_oneof![
        Just(State::Pending),
        Just(State::Completed),
        Just(State::Error),
        Just(State::Other)
    ]
}

/// Completed sources of three volumes.
fn sources() -> impl Strategy<Value = Vec<Snapshot>> {
    proptest::collection::vec((0usize..3, 0i64..40), 0..12).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (volume, day))| Snapshot {
                id: format!("snap-s{i:03}"),
                volume_id: format!("vol-{volume}"),
                state: State::Completed,
                start_time: day * DAY,
                encrypted: false,
                tags: Vec::new(),
            })
            .collect()
    })
}

/// A copy of `source`, as the copier tags it (the start time tag optional:
/// older copies lack it).
fn copy_of(source: &Snapshot, id: String, state: State, start_tag: bool) -> Snapshot {
    let mut tags = vec![
        (SOURCE_ID_TAG.to_owned(), source.id.clone()),
        (SOURCE_VOLUME_TAG.to_owned(), source.volume_id.clone()),
        (MANAGED_BY_TAG.to_owned(), MANAGED_BY_VALUE.to_owned()),
    ];
    if start_tag {
        tags.push((
            SOURCE_START_TIME_TAG.to_owned(),
            source.start_time.to_string(),
        ));
    }
    Snapshot {
        id,
        volume_id: "vol-ffffffff".into(),
        state,
        start_time: source.start_time + DAY,
        encrypted: false,
        tags,
    }
}

/// Sources and copies in a destination: copies of live sources and of
/// sources gone since, in any state, some of them duplicates.
fn world() -> impl Strategy<Value = (Vec<Snapshot>, Vec<Snapshot>)> {
    (
        sources(),
        proptest::collection::vec((0usize..16, state(), any::<bool>()), 0..16),
    )
        .prop_map(|(sources, specs)| {
            let copies = specs
                .into_iter()
                .enumerate()
                .map(|(i, (of, state, start_tag))| {
                    let source = sources.get(of).cloned().unwrap_or_else(|| Snapshot {
                        id: format!("snap-gone{of:03}"),
                        volume_id: format!("vol-{}", of % 3),
                        state: State::Completed,
                        start_time: (of as i64 * 7 % 40) * DAY,
                        encrypted: false,
                        tags: Vec::new(),
                    });
                    copy_of(&source, format!("snap-c{i:03}"), state, start_tag)
                })
                .collect();
            (sources, copies)
        })
}

fn retention() -> impl Strategy<Value = Retention> {
    (
        proptest::option::of(1usize..5),
        proptest::option::of(0i64..30),
    )
        .prop_map(|(keep, days)| Retention {
            keep,
            max_age_secs: days.map(|d| d * DAY),
        })
}

/// The destination after `plan` ran: new copies pending, replaced and
/// deleted copies gone.
fn apply(sources: &[Snapshot], copies: &[Snapshot], plan: &Plan) -> Vec<Snapshot> {
    let mut after: Vec<Snapshot> = copies
        .iter()
        .filter(|c| {
            !plan.delete.contains(&c.id)
                && !plan.copy.iter().any(|(_, errored)| errored.contains(&c.id))
        })
        .cloned()
        .collect();
    for (i, (id, _)) in plan.copy.iter().enumerate() {
        let source = sources
            .iter()
            .find(|s| &s.id == id)
            .expect("plans copy sources");
        after.push(copy_of(
            source,
            format!("snap-new{i:03}"),
            State::Pending,
            true,
        ));
    }
    after
}

proptest! {
    #[test]
    fn tag_values_never_panic_and_yield_only_real_destinations(value in ".{0,60}", defaults in proptest::collection::vec("[a-z]{2}-[a-z]{4,9}-[1-3]", 0..3)) {
        if let Ok(regions) = parse(&value, &defaults, "us-east-1") {
            prop_assert!(!regions.is_empty());
            prop_assert!(regions.iter().all(|r| is_region(r) && r != "us-east-1"));
            prop_assert_eq!(regions.iter().collect::<HashSet<_>>().len(), regions.len());
        }
    }

    #[test]
    fn listed_regions_come_back_in_order(regions in proptest::collection::vec("[a-z]{2}-[a-z]{4,9}-[1-3]", 1..5)) {
        let value = regions.join(" , ");
        let mut expected: Vec<String> = Vec::new();
        for r in &regions {
            if r != "us-east-1" && !expected.contains(r) {
                expected.push(r.clone());
            }
        }
        match parse(&value, &[], "us-east-1") {
            Ok(parsed) => prop_assert_eq!(parsed, expected),
            Err(_) => prop_assert!(expected.is_empty()),
        }
    }

    #[test]
    fn one_plan_reaches_the_fixed_point((sources, copies) in world(), retention in retention()) {
        let now = 40 * DAY;
        let first = plan(&sources, &copies, retention, now);
        let after = apply(&sources, &copies, &first);
        let second = plan(&sources, &after, retention, now);
        prop_assert!(second.is_empty(), "first {:?}\nthen {:?}", first, second);
        prop_assert_eq!(&second.dropped, &first.dropped);
    }

    #[test]
    fn the_planner_spares_copies_in_progress_and_the_newest_completed(
        (sources, copies) in world(),
        retention in retention(),
    ) {
        let p = plan(&sources, &copies, retention, 40 * DAY);
        let doomed: HashSet<&String> = p.delete.iter().collect();
        for c in &copies {
            if doomed.contains(&c.id) {
                prop_assert!(c.state == State::Completed || c.state == State::Error, "{} is {:?}", c.id, c.state);
            }
        }
        // Every volume that had a completed copy still has one.
        for volume in 0..3 {
            let tag = format!("vol-{volume}");
            let completed = |c: &&Snapshot| c.state == State::Completed && c.tag(SOURCE_VOLUME_TAG) == Some(tag.as_str());
            if copies.iter().any(|c| completed(&c)) {
                prop_assert!(copies.iter().filter(completed).any(|c| !doomed.contains(&c.id)), "{} lost every completed copy", tag);
            }
        }
        // A dropped source is never copied.
        for (id, _) in &p.copy {
            prop_assert!(!p.dropped.contains(id));
        }
    }
}
