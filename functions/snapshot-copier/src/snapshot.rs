//! Snapshots as the copier sees them, and the tags it reads and writes.

/// Tags the copier puts on every copy.
pub const SOURCE_ID_TAG: &str = "dr:source-snapshot-id";
pub const SOURCE_REGION_TAG: &str = "dr:source-region";
pub const SOURCE_VOLUME_TAG: &str = "dr:source-volume-id";
/// The source's start time (epoch seconds): retention ranks copies by it.
pub const SOURCE_START_TIME_TAG: &str = "dr:source-start-time";
/// Marks a copy as this copier's: retention touches nothing else.
pub const MANAGED_BY_TAG: &str = "dr:managed-by";
pub const MANAGED_BY_VALUE: &str = "snapshot-copier";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Completed,
    Error,
    /// Recovering, recoverable: treated as in progress.
    Other,
}

impl State {
    pub fn parse(text: &str) -> Self {
        match text {
            "pending" => Self::Pending,
            "completed" => Self::Completed,
            "error" => Self::Error,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub volume_id: String,
    pub state: State,
    /// Epoch seconds.
    pub start_time: i64,
    pub encrypted: bool,
    pub tags: Vec<(String, String)>,
}

impl Snapshot {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_managed(&self) -> bool {
        self.tag(MANAGED_BY_TAG) == Some(MANAGED_BY_VALUE)
    }
}
