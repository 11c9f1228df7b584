//! Which objects become jobs, and each job's identity.

use crate::event::ObjectCreated;
use sha2::{Digest, Sha256};

/// Where uploads are expected and where outputs go; prefixes are normalized
/// to "" or "dir/".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    pub input_bucket: String,
    pub input_prefix: String,
    pub output_bucket: String,
    pub output_prefix: String,
    /// Lowercase, without the dot.
    pub suffixes: Vec<String>,
}

/// "videos" / "/videos/" -> "videos/"; "" and "/" -> "".
pub fn normalize_prefix(raw: &str) -> String {
    let trimmed = raw.trim().trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

impl Locations {
    /// True when outputs could land where uploads trigger the function.
    pub fn output_can_trigger_input(&self) -> bool {
        self.input_bucket == self.output_bucket
            && (self.input_prefix.starts_with(&self.output_prefix)
                || self.output_prefix.starts_with(&self.input_prefix))
    }

    /// Why an object is not a job, or None when it is one.
    pub fn skip_reason(&self, object: &ObjectCreated) -> Option<String> {
        let key = &object.key;
        if object.bucket == self.output_bucket && key.starts_with(&self.output_prefix) {
            return Some(format!(
                "under the output prefix s3://{}/{}",
                self.output_bucket, self.output_prefix
            ));
        }
        if object.bucket != self.input_bucket {
            return Some(format!(
                "bucket {:?} is not INPUT_BUCKET {:?}",
                object.bucket, self.input_bucket
            ));
        }
        if !key.starts_with(&self.input_prefix) {
            return Some(format!("not under INPUT_PREFIX {:?}", self.input_prefix));
        }
        if key.ends_with('/') {
            return Some("folder marker".into());
        }
        if object.size == Some(0) {
            return Some("empty object".into());
        }
        let name = key.rsplit('/').next().unwrap_or(key);
        let suffix = name
            .rsplit_once('.')
            .map(|(_, s)| s.to_lowercase())
            .unwrap_or_default();
        if !self.suffixes.contains(&suffix) {
            return Some(format!(
                "suffix {suffix:?} is not in INPUT_SUFFIXES ({})",
                self.suffixes.join(",")
            ));
        }
        None
    }
}

/// Deterministic per object version and upload: the same event delivered
/// twice gets the same id; a re-upload (new sequencer) gets a new one.
/// Used as the RunInstances ClientToken and as a tag.
pub fn job_id(object: &ObjectCreated) -> String {
    let mut hash = Sha256::new();
    let version = object.version_id.as_deref().or(object.etag.as_deref());
    for field in [
        Some(object.bucket.as_str()),
        Some(object.key.as_str()),
        version,
        object.sequencer.as_deref(),
    ] {
        // Length-prefixed, so no two field lists hash alike.
        let bytes = field.unwrap_or_default().as_bytes();
        hash.update((bytes.len() as u64).to_le_bytes());
        hash.update(bytes);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("tj-{hex}")
}

/// The RunInstances ClientToken of one attempt: EC2 starts nothing new for
/// a token it has seen, and a relaunch needs a new one.
pub fn client_token(job_id: &str, attempt: u32) -> String {
    if attempt <= 1 {
        job_id.to_owned()
    } else {
        format!("{job_id}-a{attempt}")
    }
}

pub const TAG_JOB_ID: &str = "transcode:job-id";
pub const TAG_ATTEMPT: &str = "transcode:attempt";
pub const TAG_SOURCE_BUCKET: &str = "transcode:source-bucket";
pub const TAG_SOURCE_KEY: &str = "transcode:source-key";
pub const TAG_TRUNCATED: &str = "transcode:truncated-tags";
/// EC2's limit on a tag value, in Unicode characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// The instance's tags. A value over EC2's limit is cut to 255 characters
/// plus "…", and the cut tags are listed under `transcode:truncated-tags`.
pub fn tags(object: &ObjectCreated, job_id: &str) -> Vec<(String, String)> {
    let mut truncated = Vec::new();
    let mut fit = |name: &str, value: &str| {
        if value.chars().count() <= MAX_TAG_VALUE_CHARS {
            value.to_owned()
        } else {
            truncated.push(name.to_owned());
            let mut cut: String = value.chars().take(MAX_TAG_VALUE_CHARS - 1).collect();
            cut.push('…');
            cut
        }
    };
    let mut tags = vec![
        ("Name".to_owned(), format!("transcode-{job_id}")),
        (TAG_JOB_ID.to_owned(), job_id.to_owned()),
        (
            TAG_SOURCE_BUCKET.to_owned(),
            fit(TAG_SOURCE_BUCKET, &object.bucket),
        ),
        (TAG_SOURCE_KEY.to_owned(), fit(TAG_SOURCE_KEY, &object.key)),
    ];
    if !truncated.is_empty() {
        tags.push((TAG_TRUNCATED.to_owned(), truncated.join(",")));
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: "in".into(),
            key: key.into(),
            size: Some(10),
            etag: Some("etag".into()),
            version_id: None,
            sequencer: Some("0055".into()),
        }
    }

    fn locations() -> Locations {
        Locations {
            input_bucket: "in".into(),
            input_prefix: String::new(),
            output_bucket: "in".into(),
            output_prefix: "transcoded/".into(),
            suffixes: vec!["mp4".into(), "mov".into()],
        }
    }

    #[test]
    fn filters() {
        let l = locations();
        assert_eq!(l.skip_reason(&object("videos/a.MOV")), None);
        assert!(
            l.skip_reason(&object("transcoded/x/a.mp4"))
                .unwrap()
                .contains("output prefix")
        );
        assert_eq!(l.skip_reason(&object("videos/")).unwrap(), "folder marker");
        assert!(
            l.skip_reason(&object("notes.txt"))
                .unwrap()
                .contains("\"txt\"")
        );
        assert!(
            l.skip_reason(&object("noext"))
                .unwrap()
                .contains("INPUT_SUFFIXES")
        );
        let empty = ObjectCreated {
            size: Some(0),
            ..object("a.mp4")
        };
        assert_eq!(l.skip_reason(&empty).unwrap(), "empty object");
        let other = ObjectCreated {
            bucket: "elsewhere".into(),
            ..object("a.mp4")
        };
        assert!(l.skip_reason(&other).unwrap().contains("INPUT_BUCKET"));
    }

    #[test]
    fn loops_are_detected() {
        let mut l = locations();
        assert!(
            l.output_can_trigger_input(),
            "input prefix \"\" covers everything"
        );
        l.input_prefix = "videos/".into();
        assert!(!l.output_can_trigger_input());
        l.output_prefix = "videos/out/".into();
        assert!(l.output_can_trigger_input());
        l.output_bucket = "out".into();
        assert!(!l.output_can_trigger_input());
        assert_eq!(normalize_prefix("/a/b/"), "a/b/");
        assert_eq!(normalize_prefix("/"), "");
    }

    #[test]
    fn job_ids_are_stable_and_distinct() {
        let a = object("a.mp4");
        assert_eq!(job_id(&a), job_id(&a.clone()));
        assert_eq!(job_id(&a).len(), 35);
        let reupload = ObjectCreated {
            sequencer: Some("0056".into()),
            ..a.clone()
        };
        assert_ne!(job_id(&a), job_id(&reupload));
        let versioned = ObjectCreated {
            version_id: Some("v".into()),
            ..a.clone()
        };
        assert_ne!(job_id(&a), job_id(&versioned));
    }

    #[test]
    fn long_tag_values_are_cut_and_noted() {
        let long = "動".repeat(300);
        let tags = tags(&object(&long), "tj-1");
        let key = &tags.iter().find(|(k, _)| k == TAG_SOURCE_KEY).unwrap().1;
        assert_eq!(key.chars().count(), MAX_TAG_VALUE_CHARS);
        assert!(key.ends_with('…'));
        assert_eq!(
            tags.last().unwrap(),
            &(TAG_TRUNCATED.into(), TAG_SOURCE_KEY.into())
        );
        assert_eq!(super::tags(&object("a.mp4"), "tj-1").len(), 4);
    }
}
