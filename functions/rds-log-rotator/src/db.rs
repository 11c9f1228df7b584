//! What the server reports before a rotation, and an in-memory server that
//! behaves like RDS's log tables for the domain tests.

use crate::log_table::Log;
use crate::ports::{DbError, LogDb, Row, RowStream};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the pre-checks look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// `@@log_output`, such as "TABLE" or "FILE,TABLE".
    pub log_output: String,
    pub slow_log_on: bool,
    pub general_log_on: bool,
    pub read_only: bool,
    /// Which rotate procedures exist in `mysql`.
    pub procedures: Vec<String>,
}

impl ServerState {
    /// Why `log` cannot be rotated here, or None.
    pub fn skip_reason(&self, log: Log) -> Option<String> {
        if !self
            .log_output
            .split(',')
            .any(|o| o.trim().eq_ignore_ascii_case("TABLE"))
        {
            return Some(format!(
                "log_output is {:?}: the log is not written to a table",
                self.log_output
            ));
        }
        let on = match log {
            Log::Slow => self.slow_log_on,
            Log::General => self.general_log_on,
        };
        if !on {
            return Some(format!("{} is OFF", log.enabled_variable()));
        }
        if self.read_only {
            return Some("the server is read-only (a replica): rotate on the primary".into());
        }
        if !self.procedures.iter().any(|p| p == log.rotate_procedure()) {
            return Some(format!(
                "procedure mysql.{} does not exist: not an RDS MySQL server",
                log.rotate_procedure()
            ));
        }
        None
    }
}

/// A server in memory. Clones share it, like connections to one server.
#[derive(Debug, Clone)]
pub struct MemoryServer {
    pub inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug)]
pub struct MemoryInner {
    pub state: ServerState,
    pub tables: HashMap<String, Vec<Row>>,
    pub lock_holder: Option<u64>,
    pub rotations: u32,
    /// Rows the server walked to answer reads, COUNT(*) scans included.
    pub rows_read: u64,
    /// Outside rotations to inject: just before a session's next operation
    /// named like `"rotate:slow"` or `"count:slow_log"`, RDS rotates the log.
    pub rotate_before: Vec<(String, Log)>,
    next_session: u64,
}

pub const SLOW_COLUMNS: [&str; 3] = ["start_time", "query_time", "sql_text"];
pub const GENERAL_COLUMNS: [&str; 2] = ["event_time", "argument"];

impl Default for MemoryServer {
    fn default() -> Self {
        let mut tables = HashMap::new();
        tables.insert("slow_log".to_owned(), Vec::new());
        tables.insert("general_log".to_owned(), Vec::new());
        Self {
            inner: Arc::new(Mutex::new(MemoryInner {
                state: ServerState {
                    log_output: "TABLE".into(),
                    slow_log_on: true,
                    general_log_on: true,
                    read_only: false,
                    procedures: Log::ALL
                        .iter()
                        .map(|l| l.rotate_procedure().to_owned())
                        .collect(),
                },
                tables,
                lock_holder: None,
                rotations: 0,
                rows_read: 0,
                rotate_before: Vec::new(),
                next_session: 1,
            })),
        }
    }
}

impl MemoryServer {
    pub fn session(&self) -> MemorySession {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.next_session += 1;
        MemorySession {
            server: self.clone(),
            id: inner.next_session,
        }
    }

    /// Logs a query: a slow_log row and a general_log row, at `time`.
    pub fn log_query(&self, time: &str, sql: &str, query_time: &str) {
        let mut inner = self.inner.lock().expect("not poisoned");
        let text = |s: &str| Some(s.as_bytes().to_vec());
        inner
            .tables
            .get_mut("slow_log")
            .expect("live table")
            .push(vec![text(time), text(query_time), text(sql)]);
        inner
            .tables
            .get_mut("general_log")
            .expect("live table")
            .push(vec![text(time), text(sql)]);
    }

    /// What RDS's procedure does, also when RDS rotates on its own.
    pub fn rotate(&self, log: Log) {
        let mut inner = self.inner.lock().expect("not poisoned");
        let live = inner.tables.insert(log.table().to_owned(), Vec::new());
        inner
            .tables
            .insert(log.backup_table().to_owned(), live.unwrap_or_default());
        inner.rotations += 1;
    }
}

fn columns_of(table: &str) -> Vec<String> {
    let names: &[&str] = if table.starts_with("slow") {
        &SLOW_COLUMNS
    } else {
        &GENERAL_COLUMNS
    };
    names.iter().map(|c| (*c).to_owned()).collect()
}

pub struct MemoryRows {
    server: MemoryServer,
    columns: Vec<String>,
    rows: std::vec::IntoIter<Row>,
}

impl RowStream for MemoryRows {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    async fn next(&mut self) -> Result<Option<Row>, DbError> {
        let row = self.rows.next();
        if row.is_some() {
            self.server.inner.lock().expect("not poisoned").rows_read += 1;
        }
        Ok(row)
    }
}

pub struct MemorySession {
    server: MemoryServer,
    id: u64,
}

impl MemorySession {
    /// Performs the outside rotations injected before `operation`.
    fn before(&self, operation: &str) {
        let due: Vec<Log> = {
            let mut inner = self.server.inner.lock().expect("not poisoned");
            let (due, rest) = std::mem::take(&mut inner.rotate_before)
                .into_iter()
                .partition(|(op, _)| op == operation);
            inner.rotate_before = rest;
            due.into_iter().map(|(_, log)| log).collect()
        };
        for log in due {
            self.server.rotate(log);
        }
    }
}

impl LogDb for MemorySession {
    async fn server_state(&mut self) -> Result<ServerState, DbError> {
        Ok(self
            .server
            .inner
            .lock()
            .expect("not poisoned")
            .state
            .clone())
    }

    async fn try_lock(&mut self, _name: &str) -> Result<bool, DbError> {
        let mut inner = self.server.inner.lock().expect("not poisoned");
        match inner.lock_holder {
            Some(holder) if holder != self.id => Ok(false),
            _ => {
                inner.lock_holder = Some(self.id);
                Ok(true)
            }
        }
    }

    async fn release_lock(&mut self, _name: &str) -> Result<(), DbError> {
        let mut inner = self.server.inner.lock().expect("not poisoned");
        if inner.lock_holder == Some(self.id) {
            inner.lock_holder = None;
        }
        Ok(())
    }

    async fn count(&mut self, table: &str) -> Result<Option<u64>, DbError> {
        self.before(&format!("count:{table}"));
        let mut inner = self.server.inner.lock().expect("not poisoned");
        let rows = inner.tables.get(table).map(|rows| rows.len() as u64);
        // COUNT(*) on a CSV table reads the whole file.
        inner.rows_read += rows.unwrap_or(0);
        Ok(rows)
    }

    async fn oldest(&mut self, table: &str, _column: &str) -> Result<Option<String>, DbError> {
        self.before(&format!("oldest:{table}"));
        let mut inner = self.server.inner.lock().expect("not poisoned");
        // MIN() on a CSV table reads the whole file.
        inner.rows_read += inner.tables.get(table).map_or(0, |rows| rows.len() as u64);
        Ok(inner
            .tables
            .get(table)
            .and_then(|rows| rows.first())
            .and_then(|row| row[0].clone())
            .map(|t| String::from_utf8_lossy(&t).into_owned()))
    }

    async fn first_row(&mut self, table: &str) -> Result<Option<(Vec<String>, Row)>, DbError> {
        self.before(&format!("first_row:{table}"));
        let mut inner = self.server.inner.lock().expect("not poisoned");
        inner.rows_read += 1;
        Ok(inner
            .tables
            .get(table)
            .and_then(|rows| rows.first())
            .map(|row| (columns_of(table), row.clone())))
    }

    type Rows<'a> = MemoryRows;

    async fn rows(&mut self, table: &str) -> Result<MemoryRows, DbError> {
        self.before(&format!("rows:{table}"));
        let rows: Vec<Row> = self
            .server
            .inner
            .lock()
            .expect("not poisoned")
            .tables
            .get(table)
            .ok_or_else(|| DbError::Failed(format!("Table 'mysql.{table}' doesn't exist")))?
            .clone();
        Ok(MemoryRows {
            server: self.server.clone(),
            columns: columns_of(table),
            rows: rows.into_iter(),
        })
    }

    async fn rotate(&mut self, log: Log) -> Result<(), DbError> {
        self.before(&format!("rotate:{}", log.name()));
        self.server.rotate(log);
        Ok(())
    }
}
