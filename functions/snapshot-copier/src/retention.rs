//! Which of this copier's copies in a region to delete.
//!
//! Only snapshots tagged `dr:managed-by=snapshot-copier` are considered.
//! Per source volume the newest `keep` are kept, and/or those younger than
//! the retention age; a pending copy and the newest completed copy of a
//! volume are never deleted, whatever the settings.

use crate::snapshot::{SOURCE_VOLUME_TAG, Snapshot, State};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many copies per source volume.
    pub keep: Option<usize>,
    /// Delete copies older than this many seconds.
    pub max_age_secs: Option<i64>,
}

/// The ids to delete among `snapshots` at `now` (epoch seconds), oldest
/// first within each volume.
pub fn plan(snapshots: &[Snapshot], retention: Retention, now: i64) -> Vec<String> {
    let mut by_volume: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for snapshot in snapshots.iter().filter(|s| s.is_managed()) {
        let volume = snapshot
            .tag(SOURCE_VOLUME_TAG)
            .unwrap_or(&snapshot.volume_id);
        by_volume.entry(volume).or_default().push(snapshot);
    }
    let mut doomed = Vec::new();
    for copies in by_volume.values_mut() {
        // Newest first; ties broken by id so the plan is deterministic.
        copies.sort_by(|a, b| {
            b.start_time
                .cmp(&a.start_time)
                .then_with(|| a.id.cmp(&b.id))
        });
        let newest_completed = copies
            .iter()
            .find(|s| s.state == State::Completed)
            .map(|s| s.id.as_str());
        let mut volume_doomed: Vec<&Snapshot> = copies
            .iter()
            .enumerate()
            .filter(|(rank, s)| {
                let too_many = retention.keep.is_some_and(|keep| *rank >= keep);
                let too_old = retention
                    .max_age_secs
                    .is_some_and(|age| now - s.start_time > age);
                too_many || too_old
            })
            .map(|(_, s)| *s)
            .filter(|s| s.state != State::Pending && s.state != State::Other)
            .filter(|s| Some(s.id.as_str()) != newest_completed)
            .collect();
        volume_doomed.reverse();
        doomed.extend(volume_doomed.into_iter().map(|s| s.id.clone()));
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{MANAGED_BY_TAG, MANAGED_BY_VALUE};

    const DAY: i64 = 86_400;

    fn copy(id: &str, volume: &str, day: i64, state: State, managed: bool) -> Snapshot {
        let mut tags = vec![(SOURCE_VOLUME_TAG.to_owned(), volume.to_owned())];
        if managed {
            tags.push((MANAGED_BY_TAG.to_owned(), MANAGED_BY_VALUE.to_owned()));
        }
        Snapshot {
            id: id.into(),
            volume_id: "vol-ffffffff".into(),
            state,
            start_time: day * DAY,
            encrypted: false,
            tags,
        }
    }

    #[test]
    fn keeps_the_newest_per_volume_and_never_the_unmanaged() {
        let snapshots = vec![
            copy("a1", "vol-a", 1, State::Completed, true),
            copy("a2", "vol-a", 2, State::Completed, true),
            copy("a3", "vol-a", 3, State::Completed, true),
            copy("a0", "vol-a", 0, State::Completed, false),
            copy("b1", "vol-b", 1, State::Completed, true),
        ];
        let keep_two = Retention {
            keep: Some(2),
            max_age_secs: None,
        };
        assert_eq!(plan(&snapshots, keep_two, 10 * DAY), vec!["a1"]);
        let week = Retention {
            keep: None,
            max_age_secs: Some(7 * DAY),
        };
        // All are old, but the newest completed copy of each volume stays.
        assert_eq!(plan(&snapshots, week, 30 * DAY), vec!["a1", "a2"]);
    }

    #[test]
    fn pending_copies_and_the_newest_completed_survive() {
        let snapshots = vec![
            copy("p", "vol-a", 5, State::Pending, true),
            copy("c", "vol-a", 4, State::Completed, true),
            copy("e", "vol-a", 3, State::Error, true),
            copy("old", "vol-a", 1, State::Completed, true),
        ];
        let keep_one = Retention {
            keep: Some(1),
            max_age_secs: None,
        };
        assert_eq!(plan(&snapshots, keep_one, 10 * DAY), vec!["old", "e"]);
    }
}
