//! The tags a copy gets: the copier's own, then as many of the source's as
//! EC2 accepts. A source tag is never a reason for CopySnapshot to fail:
//! one whose key the copier writes is renamed, what exceeds EC2's 50 tags
//! is dropped, and the result names both.

/// Tags EC2 accepts per resource.
pub const MAX_TAGS: usize = 50;
/// Longest tag key EC2 accepts, in characters.
const MAX_KEY_CHARS: usize = 128;
/// Prefix for a source tag whose key is one of the copier's.
pub const RENAMED_PREFIX: &str = "source:";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyTags {
    pub tags: Vec<(String, String)>,
    /// (source key, key on the copy).
    pub renamed: Vec<(String, String)>,
    /// Source keys left off.
    pub dropped: Vec<String>,
}

impl CopyTags {
    /// What differs from the source's tags, for the summary and the log.
    pub fn warning(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.renamed.is_empty() {
            let renamed: Vec<String> = self
                .renamed
                .iter()
                .map(|(from, to)| format!("{from} -> {to}"))
                .collect();
            parts.push(format!("source tags renamed: {}", renamed.join(", ")));
        }
        if !self.dropped.is_empty() {
            parts.push(format!(
                "source tags left off (EC2 allows {MAX_TAGS} per snapshot): {}",
                self.dropped.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// `ours` (never changed) plus the source's tags minus `aws:*` and
/// `copy_tag_key`. When they do not all fit, `Name` is kept first, then the
/// others by key.
pub fn for_copy(
    source: &[(String, String)],
    copy_tag_key: &str,
    ours: Vec<(String, String)>,
) -> CopyTags {
    let mut result = CopyTags::default();
    let taken = |key: &str, tags: &[(String, String)]| tags.iter().any(|(k, _)| k == key);
    let mut theirs: Vec<(String, String)> = Vec::new();
    let mut candidates: Vec<&(String, String)> = source
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:") && k != copy_tag_key)
        .collect();
    candidates.sort_by(|a, b| (a.0 != "Name", &a.0).cmp(&(b.0 != "Name", &b.0)));
    let room = MAX_TAGS.saturating_sub(ours.len());
    // Tags kept under their own key first, so that a renamed key cannot push
    // out a source tag that needed no change.
    let (plain, clashing): (Vec<_>, Vec<_>) =
        candidates.into_iter().partition(|(k, _)| !taken(k, &ours));
    for (key, value) in plain.into_iter().chain(clashing) {
        let renamed = if taken(key, &ours) {
            format!("{RENAMED_PREFIX}{key}")
        } else {
            key.clone()
        };
        let fits = theirs.len() < room
            && renamed.chars().count() <= MAX_KEY_CHARS
            && !taken(&renamed, &ours)
            && !taken(&renamed, &theirs);
        if !fits {
            result.dropped.push(key.clone());
            continue;
        }
        if &renamed != key {
            result.renamed.push((key.clone(), renamed.clone()));
        }
        theirs.push((renamed, value.clone()));
    }
    theirs.extend(ours);
    result.tags = theirs;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn clashing_keys_are_renamed_and_the_excess_dropped() {
        let ours = pairs(&[
            ("dr:source-snapshot-id", "snap-1"),
            ("dr:managed-by", "snapshot-copier"),
        ]);
        let mut source = pairs(&[
            ("dr:copy-to", "us-west-2"),
            ("aws:backup", "x"),
            ("dr:source-snapshot-id", "snap-0"),
            ("source:dr:source-snapshot-id", "taken"),
            ("Name", "db"),
        ]);
        let copy = for_copy(&source, "dr:copy-to", ours.clone());
        assert_eq!(
            copy.dropped,
            vec!["dr:source-snapshot-id"],
            "its new name is taken"
        );
        assert_eq!(copy.tags.len(), 4);
        source.retain(|(k, _)| k != "source:dr:source-snapshot-id");
        let copy = for_copy(&source, "dr:copy-to", ours.clone());
        assert_eq!(
            copy.renamed,
            vec![(
                "dr:source-snapshot-id".to_owned(),
                "source:dr:source-snapshot-id".to_owned()
            )]
        );
        assert!(copy.warning().unwrap().contains("dr:source-snapshot-id"));

        let mut crowded = pairs(&[("zz", "1"), ("Name", "db"), ("dr:managed-by", "other")]);
        crowded.extend((0..60).map(|i| (format!("k{i:02}"), String::new())));
        let copy = for_copy(&crowded, "dr:copy-to", ours.clone());
        assert_eq!(copy.tags.len(), MAX_TAGS);
        assert!(
            copy.tags.iter().any(|(k, _)| k == "Name"),
            "Name is kept first"
        );
        assert!(
            copy.dropped.contains(&"dr:managed-by".to_owned())
                && copy.dropped.contains(&"zz".to_owned())
        );
        assert!(copy.tags.ends_with(&ours), "ours are never dropped");
        assert_eq!(
            for_copy(&pairs(&[("team", "db")]), "dr:copy-to", ours).warning(),
            None
        );
    }
}
