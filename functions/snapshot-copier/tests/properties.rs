//! Tag values and the retention planner, over arbitrary input.

use proptest::prelude::*;
use snapshot_copier::destinations::{is_region, parse};
use snapshot_copier::retention::{Retention, plan};
use snapshot_copier::snapshot::{
    MANAGED_BY_TAG, MANAGED_BY_VALUE, SOURCE_VOLUME_TAG, Snapshot, State,
};
use std::collections::HashSet;

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        0usize..3,
        0i64..40,
        prop_oneof![
            Just(State::Pending),
            Just(State::Completed),
            Just(State::Error),
            Just(State::Other)
        ],
        any::<bool>(),
    )
        .prop_map(|(volume, day, state, managed)| {
            let mut tags = vec![(SOURCE_VOLUME_TAG.to_owned(), format!("vol-{volume}"))];
            if managed {
                tags.push((MANAGED_BY_TAG.to_owned(), MANAGED_BY_VALUE.to_owned()));
            }
            Snapshot {
                id: String::new(),
                volume_id: "vol-ffffffff".into(),
                state,
                start_time: day * 86_400,
                encrypted: false,
                tags,
            }
        })
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
    fn the_planner_spares_unmanaged_pending_and_the_newest_completed(
        snapshots in proptest::collection::vec(snapshot(), 0..25).prop_map(|mut v| {
            for (i, s) in v.iter_mut().enumerate() {
                s.id = format!("snap-{i:04}");
            }
            v
        }),
        keep in proptest::option::of(0usize..5),
        max_age_days in proptest::option::of(0i64..30),
    ) {
        let retention = Retention { keep, max_age_secs: max_age_days.map(|d| d * 86_400) };
        let doomed: HashSet<String> = plan(&snapshots, retention, 40 * 86_400).into_iter().collect();
        for s in &snapshots {
            if doomed.contains(&s.id) {
                prop_assert!(s.is_managed(), "{} is not managed", s.id);
                prop_assert!(s.state == State::Completed || s.state == State::Error, "{} is {:?}", s.id, s.state);
            }
        }
        // The newest completed managed copy of each volume survives.
        for volume in 0..3 {
            let tag = format!("vol-{volume}");
            let newest = snapshots
                .iter()
                .filter(|s| s.is_managed() && s.state == State::Completed && s.tag(SOURCE_VOLUME_TAG) == Some(tag.as_str()))
                .max_by(|a, b| a.start_time.cmp(&b.start_time).then_with(|| b.id.cmp(&a.id)));
            if let Some(newest) = newest {
                prop_assert!(!doomed.contains(&newest.id), "newest completed {} deleted", newest.id);
            }
        }
    }
}
