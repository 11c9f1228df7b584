//! What one destination should hold: retention decides on restore points
//! (the source snapshots), ranked per source volume by the source's start
//! time, and the copies follow.
//!
//! The restore points of a destination are the live sources that ask for it
//! plus the sources of this copier's copies there that are not in error (a
//! source may be gone while its copy stays). Per volume, newest first (ties
//! by id), retention keeps the newest `keep` and/or those younger than the
//! age limit. A kept source without a copy is copied; a dropped one never
//! is. Copies of dropped restore points are deleted, together once none is
//! in progress, except those of the newest restore point of each volume
//! with a completed copy. Errored copies are deleted (replaced when their
//! source is kept and live).
//!
//! Applying a plan changes nothing the next plan depends on: copies only
//! appear for kept points, and only dropped points disappear, which cannot
//! move a kept point's rank (everything ranked above a kept point is kept).

use crate::snapshot::{SOURCE_ID_TAG, SOURCE_START_TIME_TAG, SOURCE_VOLUME_TAG, Snapshot, State};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many restore points per source volume.
    pub keep: Option<usize>,
    /// Drop restore points whose source started more than this many seconds ago.
    pub max_age_secs: Option<i64>,
}

/// One destination's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Kept sources without a live copy: (source id, errored copies it replaces).
    pub copy: Vec<(String, Vec<String>)>,
    /// Kept sources with a live copy: (source id, copy id).
    pub existing: Vec<(String, String)>,
    /// Live sources retention drops: never copied.
    pub dropped: Vec<String>,
    /// Copies to delete, oldest restore point first within each volume.
    pub delete: Vec<String>,
}

impl Plan {
    /// Whether applying it would change anything.
    pub fn is_empty(&self) -> bool {
        self.copy.is_empty() && self.delete.is_empty()
    }
}

/// A restore point: the source's id, volume and start time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Point<'a> {
    id: &'a str,
    volume: &'a str,
    time: i64,
}

/// The restore point a copy belongs to; the live source's facts win over
/// the copy's tags. Copies made before the start-time tag fall back to their
/// own start time.
fn point_of<'a>(copy: &'a Snapshot, sources: &HashMap<&str, &'a Snapshot>) -> Point<'a> {
    let id = copy.tag(SOURCE_ID_TAG).unwrap_or(&copy.id);
    if let Some(source) = sources.get(id) {
        return Point {
            id,
            volume: &source.volume_id,
            time: source.start_time,
        };
    }
    Point {
        id,
        volume: copy.tag(SOURCE_VOLUME_TAG).unwrap_or(&copy.volume_id),
        time: copy
            .tag(SOURCE_START_TIME_TAG)
            .and_then(|t| t.parse().ok())
            .unwrap_or(copy.start_time),
    }
}

/// Per restore point id, this copier's copies of it.
type CopiesOf<'a> = HashMap<&'a str, Vec<&'a Snapshot>>;

/// The plan for one destination at `now` (epoch seconds). `sources` are the
/// completed sources asking for it, `copies` this copier's copies there
/// (made from this source region).
pub fn plan(sources: &[Snapshot], copies: &[Snapshot], retention: Retention, now: i64) -> Plan {
    let (points, copies_of) = points_of(sources, copies);
    let ranking = rank(&points, &copies_of, retention, now);
    let mut plan = Plan::default();
    for source in sources {
        let id = source.id.as_str();
        if !ranking.kept.contains(id) {
            plan.dropped.push(source.id.clone());
            continue;
        }
        let theirs = copies_of.get(id).map(Vec::as_slice).unwrap_or_default();
        match theirs.iter().find(|c| c.state != State::Error) {
            Some(copy) => plan.existing.push((source.id.clone(), copy.id.clone())),
            None => plan.copy.push((
                source.id.clone(),
                theirs.iter().map(|c| c.id.clone()).collect(),
            )),
        }
    }
    plan.delete = deletions(&plan, &points, &copies_of, ranking);
    plan
}

/// The restore points (live sources, and the sources of copies not in
/// error), and the copies of each.
fn points_of<'a>(
    sources: &'a [Snapshot],
    copies: &'a [Snapshot],
) -> (BTreeMap<&'a str, Point<'a>>, CopiesOf<'a>) {
    let live: HashMap<&str, &Snapshot> = sources.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut copies_of: CopiesOf = HashMap::new();
    let mut points: BTreeMap<&str, Point> = sources
        .iter()
        .map(|s| {
            let point = Point {
                id: &s.id,
                volume: &s.volume_id,
                time: s.start_time,
            };
            (point.id, point)
        })
        .collect();
    for copy in copies {
        let point = point_of(copy, &live);
        copies_of.entry(point.id).or_default().push(copy);
        if copy.state == State::Error {
            continue;
        }
        // Copies that disagree on a point's facts (older copies lack the
        // time tag): the earliest wins, whatever the listing order.
        match points.get_mut(point.id) {
            None => {
                points.insert(point.id, point);
            }
            Some(known) if !live.contains_key(point.id) => {
                if (point.time, point.volume) < (known.time, known.volume) {
                    *known = point;
                }
            }
            Some(_) => {}
        }
    }
    (points, copies_of)
}

/// What retention decides for the ranked restore points.
struct Ranking<'a> {
    kept: BTreeSet<&'a str>,
    /// The newest restore point of each volume with a completed copy: its
    /// completed copies are never deleted, whatever the settings.
    spared: BTreeSet<&'a str>,
    /// Every ranked point, oldest first within each volume, for the deletions.
    oldest_first: Vec<&'a str>,
}

/// Ranks each volume's points, newest first (ties by id), and applies
/// `retention` to the ranks.
fn rank<'a>(
    points: &BTreeMap<&'a str, Point<'a>>,
    copies_of: &CopiesOf<'a>,
    retention: Retention,
    now: i64,
) -> Ranking<'a> {
    let mut by_volume: BTreeMap<&str, Vec<&Point>> = BTreeMap::new();
    for point in points.values() {
        by_volume.entry(point.volume).or_default().push(point);
    }
    let mut ranking = Ranking {
        kept: BTreeSet::new(),
        spared: BTreeSet::new(),
        oldest_first: Vec::new(),
    };
    for ranked in by_volume.values_mut() {
        ranked.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| a.id.cmp(b.id)));
        for (rank, point) in ranked.iter().enumerate() {
            let within_count = retention.keep.is_none_or(|keep| rank < keep);
            let within_age = retention
                .max_age_secs
                .is_none_or(|age| now - point.time <= age);
            if within_count && within_age {
                ranking.kept.insert(point.id);
            }
        }
        if let Some(newest) = ranked.iter().find(|p| {
            copies_of
                .get(p.id)
                .is_some_and(|c| c.iter().any(|c| c.state == State::Completed))
        }) {
            ranking.spared.insert(newest.id);
        }
        ranking
            .oldest_first
            .extend(ranked.iter().rev().map(|p| p.id));
    }
    ranking
}

/// The copies to delete: errored ones not being replaced, and the settled
/// copies of dropped points that are not spared.
fn deletions(
    plan: &Plan,
    points: &BTreeMap<&str, Point>,
    copies_of: &CopiesOf,
    ranking: Ranking,
) -> Vec<String> {
    let replaced: BTreeSet<&str> = plan
        .copy
        .iter()
        .flat_map(|(_, errored)| errored.iter().map(String::as_str))
        .collect();
    let mut delete = Vec::new();
    // Error-only restore points are not ranked: their copies go last.
    let unranked = copies_of.keys().filter(|id| !points.contains_key(*id));
    for id in ranking.oldest_first.into_iter().chain(unranked.copied()) {
        let theirs = copies_of.get(id).map(Vec::as_slice).unwrap_or_default();
        // A dropped point's copies go together, once none is in progress:
        // deleting some would leave the rest to define its rank.
        let settled = theirs
            .iter()
            .all(|c| matches!(c.state, State::Completed | State::Error));
        for copy in theirs {
            let doomed = match copy.state {
                State::Error => !replaced.contains(copy.id.as_str()),
                State::Completed => {
                    settled && !ranking.kept.contains(id) && !ranking.spared.contains(id)
                }
                State::Pending | State::Other => false,
            };
            if doomed {
                delete.push(copy.id.clone());
            }
        }
    }
    delete
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn source(id: &str, volume: &str, day: i64) -> Snapshot {
        Snapshot {
            id: id.into(),
            volume_id: volume.into(),
            state: State::Completed,
            start_time: day * DAY,
            encrypted: false,
            tags: Vec::new(),
        }
    }

    fn copy(id: &str, of: &Snapshot, state: State) -> Snapshot {
        Snapshot {
            id: id.into(),
            volume_id: "vol-ffffffff".into(),
            state,
            start_time: of.start_time + 100 * DAY,
            encrypted: false,
            tags: vec![
                (SOURCE_ID_TAG.into(), of.id.clone()),
                (SOURCE_VOLUME_TAG.into(), of.volume_id.clone()),
                (SOURCE_START_TIME_TAG.into(), of.start_time.to_string()),
            ],
        }
    }

    fn keep(n: usize) -> Retention {
        Retention {
            keep: Some(n),
            max_age_secs: None,
        }
    }

    #[test]
    fn copies_only_the_newest_sources_by_their_start_time() {
        let sources: Vec<Snapshot> = (1..=6)
            .map(|d| source(&format!("s{d}"), "vol-a", d))
            .collect();
        let first = plan(&sources, &[], keep(2), 10 * DAY);
        let to_copy: Vec<&str> = first.copy.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(to_copy, vec!["s5", "s6"]);
        assert_eq!(first.dropped, vec!["s1", "s2", "s3", "s4"]);
        // Copies of older sources made later (by an older version) go,
        // whatever their own start time.
        let late = copy("c1", &sources[0], State::Completed);
        let copies = vec![
            copy("c6", &sources[5], State::Completed),
            copy("c5", &sources[4], State::Pending),
            late,
        ];
        let second = plan(&sources, &copies, keep(2), 10 * DAY);
        assert!(second.copy.is_empty());
        assert_eq!(second.delete, vec!["c1"]);
    }

    #[test]
    fn a_gone_source_still_holds_its_rank_and_the_newest_completed_survives() {
        let old = source("s1", "vol-a", 1);
        let gone = source("s9", "vol-a", 9);
        let copies = vec![copy("c9", &gone, State::Completed)];
        let plan_now = plan(std::slice::from_ref(&old), &copies, keep(1), 10 * DAY);
        assert_eq!(plan_now.dropped, vec!["s1"], "the copy of s9 outranks s1");
        assert!(plan_now.is_empty());
        let week = Retention {
            keep: None,
            max_age_secs: Some(7 * DAY),
        };
        let all_old = plan(&[], &copies, week, 30 * DAY);
        assert!(all_old.delete.is_empty(), "the newest completed copy stays");
    }

    #[test]
    fn errored_copies_are_replaced_when_kept_and_deleted_otherwise() {
        let s1 = source("s1", "vol-a", 1);
        let s2 = source("s2", "vol-a", 2);
        let copies = vec![
            copy("e2", &s2, State::Error),
            copy("e1", &s1, State::Error),
            copy("p1", &s1, State::Pending),
        ];
        let p = plan(&[s1, s2], &copies, keep(1), 10 * DAY);
        assert_eq!(p.copy, vec![("s2".into(), vec!["e2".into()])]);
        assert_eq!(p.delete, vec!["e1"], "the pending copy stays");
    }
}
