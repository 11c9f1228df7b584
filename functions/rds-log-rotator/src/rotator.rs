//! Archive first, then rotate: per target and log, whatever the backup
//! table holds that is not archived yet goes to S3; only then is the
//! rotate procedure called, and the new backup archived at once. A
//! watermark per target and log says what is archived.

use crate::archive::{ChunkWriter, row_hash, row_time};
use crate::digest::{Digest, Entry, TopQuery};
use crate::log_table::Log;
use crate::ports::{ArchiveStore, LogDb, Row, RowStream};
use crate::preflight::ServerState;
use crate::timestamp::parse_timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// "" or "dir/".
    pub archive_prefix: String,
    pub logs: Vec<Log>,
    /// Rows per archive part (fewer when the part reaches `max_part_bytes`).
    pub part_rows: u64,
    pub max_part_bytes: usize,
    /// A live table with fewer rows is not rotated.
    pub min_rows: u64,
    /// How often the schedule runs: gaps longer than twice this are reported.
    pub schedule_secs: u64,
    pub top_n: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            archive_prefix: "rds-logs/".into(),
            logs: Log::ALL.to_vec(),
            part_rows: 50_000,
            max_part_bytes: 16 << 20,
            min_rows: 1,
            schedule_secs: 3600,
            top_n: 20,
        }
    }
}

pub const LOCK_NAME: &str = "rds-log-rotator";

/// The backup table being archived: identified by its first row, which
/// never changes while the table exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Generation {
    pub first_time: String,
    pub first_row_sha256: String,
    /// Rows seen in the backup: a lower bound until `complete`.
    pub rows: u64,
    pub archived_rows: u64,
    pub next_part: u32,
    /// The backup was read to its end, so `rows` is its size. Watermarks
    /// written before this field took `rows` from a COUNT: complete.
    #[serde(default = "complete_by_default")]
    pub complete: bool,
}

fn complete_by_default() -> bool {
    true
}

/// Kept in S3 next to the archive, per target and log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Watermark {
    pub generation: Option<Generation>,
    /// The time column of the last row archived.
    pub last_time: Option<String>,
    /// Set just before this rotator calls the procedure, so that the new
    /// backup is not mistaken for an outside rotation.
    pub rotating: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogReport {
    pub log: Option<Log>,
    pub archived_rows: u64,
    pub archives: Vec<String>,
    pub rotated: bool,
    /// Why it was skipped, rotated or not.
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_rows: Option<u64>,
    /// Dry run: rows the backup holds that would be archived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_archive_rows: Option<u64>,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetReport {
    pub instance: String,
    pub logs: Vec<LogReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Fingerprints only: samples stay in the S3 digest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_queries: Vec<TopQuery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TargetReport {
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.logs.iter().any(|l| l.error.is_some())
    }
}

pub struct Rotator<S> {
    pub store: S,
    pub settings: Settings,
}

/// One log of one instance being rotated: what its steps read and update.
struct LogRun<'a> {
    log: Log,
    instance: &'a str,
    wm: Watermark,
    digest: &'a mut Digest,
    report: LogReport,
}

/// `2026-11-22 01:02:03.123456` -> (`2026-11-22`, `20261122T010203.123456`).
fn key_parts(time: &str) -> (String, String) {
    let date = time.get(..10).unwrap_or("0000-00-00").to_owned();
    let compact: String = time
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let (day, rest) = compact.split_at(compact.len().min(8));
    (date, format!("{day}T{rest}"))
}

impl<S: ArchiveStore> Rotator<S> {
    fn log_prefix(&self, log: Log, instance: &str) -> String {
        format!(
            "{}{}/instance={instance}/",
            self.settings.archive_prefix,
            log.name()
        )
    }

    fn watermark_key(&self, log: Log, instance: &str) -> String {
        format!("{}_watermark.json", self.log_prefix(log, instance))
    }

    async fn load_watermark(&self, log: Log, instance: &str) -> Result<Watermark, String> {
        let key = self.watermark_key(log, instance);
        match self.store.get(&key).await {
            Ok(None) => Ok(Watermark::default()),
            Ok(Some(body)) => serde_json::from_slice(&body)
                .map_err(|e| format!("watermark {key} is not valid: {e}")),
            Err(e) => Err(format!("reading the watermark {key}: {e}")),
        }
    }

    async fn save_watermark(&self, log: Log, instance: &str, wm: &Watermark) -> Result<(), String> {
        let key = self.watermark_key(log, instance);
        let body = serde_json::to_vec_pretty(wm).expect("a watermark serializes");
        self.store
            .put(&key, body, "application/json")
            .await
            .map_err(|e| format!("writing the watermark {key}: {e}"))
    }

    /// One target on one connection: lock, each log, unlock, digest.
    pub async fn run_target<D: LogDb>(
        &self,
        db: &mut D,
        instance: &str,
        dry_run: bool,
        run_time: &str,
    ) -> TargetReport {
        let mut report = TargetReport {
            instance: instance.to_owned(),
            ..TargetReport::default()
        };
        match db.try_lock(LOCK_NAME).await {
            Ok(true) => {}
            Ok(false) => {
                report.skipped = Some("already running: another rotator run holds the lock".into());
                return report;
            }
            Err(e) => {
                report.error = Some(format!("GET_LOCK: {e}"));
                return report;
            }
        }
        let state = match db.server_state().await {
            Ok(state) => state,
            Err(e) => {
                report.error = Some(format!("reading server variables: {e}"));
                let _ = db.release_lock(LOCK_NAME).await;
                return report;
            }
        };
        let mut digest = Digest::default();
        for &log in &self.settings.logs {
            let log_report = self
                .run_log(db, &state, log, instance, dry_run, &mut digest)
                .await;
            report.logs.push(log_report);
        }
        if let Err(e) = db.release_lock(LOCK_NAME).await {
            tracing::warn!(instance, error = %e, "RELEASE_LOCK failed; the lock ends with the connection");
        }
        if digest.queries > 0 && !dry_run {
            let top: Vec<Entry> = digest.top(self.settings.top_n);
            report.top_queries = top.iter().map(TopQuery::from).collect();
            let (date, time) = key_parts(run_time);
            let key = format!(
                "{}dt={date}/_{time}-digest.json",
                self.log_prefix(Log::Slow, instance)
            );
            let body = serde_json::json!({
                "instance": instance,
                "generatedAt": run_time,
                "queries": digest.queries,
                "distinctFingerprints": digest.distinct(),
                "top": top,
            });
            match self
                .store
                .put(
                    &key,
                    serde_json::to_vec_pretty(&body).expect("serializes"),
                    "application/json",
                )
                .await
            {
                Ok(()) => report.digest = Some(key),
                Err(e) => {
                    if let Some(slow) = report.logs.iter_mut().find(|l| l.log == Some(Log::Slow)) {
                        slow.warnings
                            .push(format!("the digest could not be written: {e}"));
                    }
                }
            }
        }
        report
    }

    async fn run_log<D: LogDb>(
        &self,
        db: &mut D,
        state: &ServerState,
        log: Log,
        instance: &str,
        dry_run: bool,
        digest: &mut Digest,
    ) -> LogReport {
        let mut report = LogReport {
            log: Some(log),
            ..LogReport::default()
        };
        if let Some(reason) = state.skip_reason(log) {
            report.reason = format!("skipped: {reason}");
            return report;
        }
        let wm = match self.load_watermark(log, instance).await {
            Ok(wm) => wm,
            Err(e) => {
                report.error = Some(format!("{e}; not rotated"));
                return report;
            }
        };
        let mut run = LogRun {
            log,
            instance,
            wm,
            digest,
            report,
        };
        // Step 1: whatever the backup holds that is not archived yet.
        if let Err(e) = self.archive_backup(db, &mut run, dry_run).await {
            run.report.error = Some(format!(
                "archiving mysql.{} failed: {e}; not rotated, so the backup keeps its rows for the next run",
                log.backup_table()
            ));
            return run.report;
        }
        let Some(live) = self.rows_to_rotate(db, &mut run, dry_run).await else {
            return run.report;
        };
        // Step 2: rotate, now that the backup it drops is archived.
        if !self.rotate_checked(db, &mut run, live).await {
            return run.report;
        }
        // Step 3: the new backup, at once.
        if let Err(e) = self.archive_backup(db, &mut run, false).await {
            run.report.error = Some(format!(
                "rotated, but archiving the new mysql.{} failed: {e}; the next run archives it before rotating again",
                log.backup_table()
            ));
        }
        run.report
    }

    /// The live table's row count when it is due for rotation; `None` when
    /// the report already says why it is not rotated.
    async fn rows_to_rotate<D: LogDb>(
        &self,
        db: &mut D,
        run: &mut LogRun<'_>,
        dry_run: bool,
    ) -> Option<u64> {
        let log = run.log;
        let report = &mut run.report;
        let live = match db.count(log.table()).await {
            Ok(n) => n.unwrap_or(0),
            Err(e) => {
                report.error = Some(format!("counting mysql.{}: {e}; not rotated", log.table()));
                return None;
            }
        };
        report.live_rows = Some(live);
        if let (Some(last), Ok(Some(oldest))) = (
            run.wm.last_time.clone(),
            db.oldest(log.table(), log.time_column()).await,
        ) {
            self.check_gap(&last, &oldest, &format!("mysql.{}", log.table()), report);
        }
        if live < self.settings.min_rows {
            report.reason = format!(
                "not rotated: mysql.{} has {live} rows, fewer than MIN_ROWS={}",
                log.table(),
                self.settings.min_rows
            );
            return None;
        }
        if dry_run {
            report.reason = format!("dry run: would rotate mysql.{} ({live} rows)", log.table());
            return None;
        }
        Some(live)
    }

    /// Calls the rotate procedure; true when it ran. RDS may rotate on its
    /// own at any moment: the live table's first row seen now must be the
    /// backup's first row after the CALL, and the backup must still be the
    /// one archived.
    async fn rotate_checked<D: LogDb>(&self, db: &mut D, run: &mut LogRun<'_>, live: u64) -> bool {
        let log = run.log;
        let live_first = match db.first_row(log.table()).await {
            Ok(first) => first.map(|(columns, row)| {
                (
                    row_time(log, &columns, &row).unwrap_or_default(),
                    row_hash(&row),
                )
            }),
            Err(e) => {
                run.report.error = Some(format!("reading mysql.{}: {e}; not rotated", log.table()));
                return false;
            }
        };
        let backup_now = match db.first_row(log.backup_table()).await {
            Ok(first) => first.map(|(_, row)| row_hash(&row)),
            Err(e) => {
                run.report.error = Some(format!(
                    "reading mysql.{}: {e}; not rotated",
                    log.backup_table()
                ));
                return false;
            }
        };
        let archived = run.wm.generation.as_ref().map(|g| &g.first_row_sha256);
        if backup_now.is_some() && backup_now.as_ref() != archived {
            self.archive_replaced_backup(db, run).await;
            return false;
        }
        run.wm.rotating = true;
        if let Err(e) = self.save_watermark(log, run.instance, &run.wm).await {
            run.report.error = Some(format!("{e}; not rotated"));
            return false;
        }
        if let Err(e) = db.rotate(log).await {
            run.report.error = Some(format!("CALL mysql.{}: {e}", log.rotate_procedure()));
            return false;
        }
        run.report.rotated = true;
        run.report.reason = format!("rotated mysql.{} ({live} rows)", log.table());
        if let Some(live_first) = &live_first {
            self.check_rotated_during_call(db, run, live, live_first)
                .await;
        }
        true
    }

    /// Rotated since the archive: this backup is unread, so archive it
    /// instead of dropping it. The live table is fresh anyway.
    async fn archive_replaced_backup<D: LogDb>(&self, db: &mut D, run: &mut LogRun<'_>) {
        let log = run.log;
        if let Err(e) = self.archive_backup(db, run, false).await {
            run.report.error = Some(format!(
                "mysql.{} was replaced after the archive and archiving it failed: {e}; not rotated",
                log.backup_table()
            ));
            return;
        }
        run.report.reason = format!(
            "not rotated: mysql.{} was rotated outside the rotator after the archive; its new backup is archived, the next run rotates",
            log.table()
        );
    }

    /// The backup after the CALL must start with the live table's first row
    /// seen before it; otherwise RDS rotated in between and the CALL dropped
    /// a backup nobody archived.
    async fn check_rotated_during_call<D: LogDb>(
        &self,
        db: &mut D,
        run: &mut LogRun<'_>,
        live: u64,
        (live_first_time, live_first_hash): &(String, String),
    ) {
        let log = run.log;
        match db.first_row(log.backup_table()).await {
            Ok(after) => {
                let after = after.map(|(columns, row)| {
                    (row_time(log, &columns, &row).unwrap_or_default(), row_hash(&row))
                });
                if after.as_ref().map(|(_, hash)| hash) != Some(live_first_hash) {
                    let until = after.map_or("an empty table".to_owned(), |(time, _)| {
                        format!("its first row at {time}")
                    });
                    run.report.warnings.push(format!(
                        "possible gap: mysql.{table} was rotated outside the rotator between the archive and this \
                         rotator's CALL, which then dropped that backup unarchived: rows from {live_first_time} \
                         (at least {live} rows counted before the CALL) up to the new mysql.{backup} ({until}) may be lost",
                        table = log.table(),
                        backup = log.backup_table(),
                    ));
                }
            }
            Err(e) => run.report.warnings.push(format!(
                "reading mysql.{} after the CALL: {e}; a rotation by RDS during the CALL cannot be ruled out",
                log.backup_table()
            )),
        }
    }
    fn check_gap(&self, last: &str, oldest: &str, table: &str, report: &mut LogReport) {
        let allowed = 2 * self.settings.schedule_secs;
        let (Some(last_secs), Some(oldest_secs)) = (parse_timestamp(last), parse_timestamp(oldest))
        else {
            return;
        };
        if oldest_secs - last_secs > allowed as f64 {
            report.warnings.push(format!(
                "possible gap: the oldest row of {table} ({oldest}) is {:.0} s after the last row archived ({last}), \
                 more than twice the schedule ({allowed} s): rows may have been rotated away outside the rotator",
                oldest_secs - last_secs
            ));
        }
    }

    async fn archive_backup<D: LogDb>(
        &self,
        db: &mut D,
        run: &mut LogRun<'_>,
        dry_run: bool,
    ) -> Result<(), String> {
        let log = run.log;
        let backup = log.backup_table();
        if self.already_archived(db, run).await? {
            return Ok(());
        }
        // One SELECT from the first row, streamed into parts: a part per
        // query would re-walk the table each time. The stream's own first
        // row says which backup it reads, so RDS replacing the backup at any
        // moment before it is seen before anything is written; a resumed run
        // reads the archived rows once more and discards them.
        let mut stream = db.rows(backup).await.map_err(|e| e.to_string())?;
        let columns = stream.columns().to_vec();
        let Some(first) = stream.next().await.map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let (mut generation, key_stem) = self.start_generation(run, &columns, &first);
        let mut writer = ChunkWriter::new(log);
        let mut rows_read = 0u64;
        let mut next = Some(first);
        loop {
            let row = match next.take() {
                Some(row) => Some(row),
                None => stream.next().await.map_err(|e| e.to_string())?,
            };
            if let Some(row) = &row {
                rows_read += 1;
                if rows_read <= generation.archived_rows {
                    continue;
                }
                if dry_run {
                    *run.report.would_archive_rows.get_or_insert(0) += 1;
                    continue;
                }
                writer.add(&columns, row, Some(&mut *run.digest));
            } else {
                // The backup never changes: archived rows it no longer has
                // mean it was replaced by one with the same first row.
                if rows_read < generation.archived_rows {
                    return Err(format!(
                        "mysql.{backup} has {rows_read} rows, fewer than the {} already archived from it",
                        generation.archived_rows
                    ));
                }
                generation.rows = rows_read;
                generation.complete = true;
            }
            if dry_run {
                if row.is_none() {
                    break;
                }
                continue;
            }
            let full = writer.rows >= self.settings.part_rows
                || writer.compressed_len() >= self.settings.max_part_bytes;
            if writer.rows > 0 && (full || row.is_none()) {
                let part = std::mem::replace(&mut writer, ChunkWriter::new(log));
                self.put_part(run, part, &mut generation, rows_read, &key_stem)
                    .await?;
            } else if row.is_none() && run.wm.generation.as_ref() != Some(&generation) {
                run.wm.generation = Some(generation.clone());
                self.save_watermark(log, run.instance, &run.wm).await?;
            }
            if row.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// The generation of the backup whose first row is given, and the stem
    /// of its part names.
    fn start_generation(
        &self,
        run: &mut LogRun<'_>,
        columns: &[String],
        first: &Row,
    ) -> (Generation, String) {
        let log = run.log;
        let first_time = row_time(log, columns, first).unwrap_or_default();
        self.adopt_generation(
            log,
            &mut run.wm,
            first_time,
            row_hash(first),
            &mut run.report,
        );
        let generation = run.wm.generation.clone().expect("adopted above");
        let (date, time) = key_parts(&generation.first_time);
        let key_stem = format!("{}dt={date}/{time}", self.log_prefix(log, run.instance));
        (generation, key_stem)
    }

    /// A backup already archived to its end needs one row, not a scan.
    async fn already_archived<D: LogDb>(
        &self,
        db: &mut D,
        run: &mut LogRun<'_>,
    ) -> Result<bool, String> {
        let backup = run.log.backup_table();
        let Some((_, seen_first)) = db.first_row(backup).await.map_err(|e| e.to_string())? else {
            return Ok(true);
        };
        if let Some(g) = &run.wm.generation
            && g.complete
            && g.archived_rows >= g.rows
            && g.first_row_sha256 == row_hash(&seen_first)
        {
            run.wm.rotating = false;
            return Ok(true);
        }
        Ok(false)
    }

    /// Uploads one part, then moves the watermark past it.
    async fn put_part(
        &self,
        run: &mut LogRun<'_>,
        part: ChunkWriter,
        generation: &mut Generation,
        rows_read: u64,
        key_stem: &str,
    ) -> Result<(), String> {
        let passed = part.rows;
        let last_time = part.last_time.clone();
        // Part names follow from the generation and part number, so a
        // part re-sent after a lost watermark write replaces itself.
        let key = format!("{key_stem}-{:05}.jsonl.gz", generation.next_part);
        self.store
            .put(&key, part.finish(), "application/gzip")
            .await
            .map_err(|e| format!("uploading {key}: {e}"))?;
        generation.archived_rows += passed;
        generation.rows = generation.rows.max(rows_read);
        generation.next_part += 1;
        run.report.archived_rows += passed;
        run.report.archives.push(key);
        if last_time.is_some() {
            run.wm.last_time = last_time;
        }
        run.wm.generation = Some(generation.clone());
        self.save_watermark(run.log, run.instance, &run.wm).await
    }

    /// Makes the backup whose first row is given the watermark's generation:
    /// the same one resumes; another one is new, and what the previous one
    /// left unarchived is reported.
    fn adopt_generation(
        &self,
        log: Log,
        wm: &mut Watermark,
        first_time: String,
        first_hash: String,
        report: &mut LogReport,
    ) {
        let backup = log.backup_table();
        let known = wm
            .generation
            .as_ref()
            .is_some_and(|g| g.first_row_sha256 == first_hash);
        if !known {
            if let Some(previous) = &wm.generation {
                if !wm.rotating {
                    report.warnings.push(format!(
                        "possible gap: mysql.{backup} was replaced outside the rotator since it was last read \
                         (RDS rotates on its own when log tables grow, or the procedure was called by hand); \
                         its rows are archived now"
                    ));
                }
                if !previous.complete || previous.archived_rows < previous.rows {
                    let size = if previous.complete {
                        format!("to row {}", previous.rows)
                    } else {
                        format!("at least {} rows were seen, its end never", previous.rows)
                    };
                    report.warnings.push(format!(
                        "possible gap: rows from row {} of the previous backup (first row at {}; {size}) \
                         were never archived and are gone",
                        previous.archived_rows + 1,
                        previous.first_time,
                    ));
                }
            }
            if let Some(last) = wm.last_time.clone() {
                self.check_gap(&last, &first_time, &format!("mysql.{backup}"), report);
            }
            wm.generation = Some(Generation {
                first_time,
                first_row_sha256: first_hash,
                rows: 0,
                archived_rows: 0,
                next_part: 0,
                complete: false,
            });
        }
        wm.rotating = false;
    }
}

#[cfg(test)]
mod tests;
