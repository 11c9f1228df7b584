//! In-memory doubles of the ports for tests and benches (feature
//! `testing`; release builds never compile them): a server that behaves like
//! RDS's log tables, and an archive store.

use crate::log_table::Log;
use crate::ports::{ArchiveStore, DbError, LogDb, Row, RowStream, StoreError};
use crate::preflight::ServerState;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A server in memory. Clones share it, like connections to one server.
#[derive(Debug, Clone)]
pub struct InMemoryServer {
    pub inner: Arc<Mutex<InMemoryServerState>>,
}

#[derive(Debug)]
pub struct InMemoryServerState {
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

impl Default for InMemoryServer {
    fn default() -> Self {
        let mut tables = HashMap::new();
        tables.insert("slow_log".to_owned(), Vec::new());
        tables.insert("general_log".to_owned(), Vec::new());
        Self {
            inner: Arc::new(Mutex::new(InMemoryServerState {
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

impl InMemoryServer {
    pub fn session(&self) -> InMemorySession {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.next_session += 1;
        InMemorySession {
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

pub struct InMemoryRows {
    server: InMemoryServer,
    columns: Vec<String>,
    rows: std::vec::IntoIter<Row>,
}

impl RowStream for InMemoryRows {
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

pub struct InMemorySession {
    server: InMemoryServer,
    id: u64,
}

impl InMemorySession {
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

impl LogDb for InMemorySession {
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

    type Rows<'a> = InMemoryRows;

    async fn rows(&mut self, table: &str) -> Result<InMemoryRows, DbError> {
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
        Ok(InMemoryRows {
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

/// Objects in memory; `failing` makes every call fail, like S3 answering 500.
#[derive(Debug, Default)]
pub struct InMemoryArchive {
    pub objects: Mutex<BTreeMap<String, Vec<u8>>>,
    pub failing: Mutex<bool>,
    /// Puts that succeed before every later one fails.
    pub puts_before_failing: Mutex<Option<usize>>,
}

impl InMemoryArchive {
    fn check(&self) -> Result<(), StoreError> {
        if *self.failing.lock().expect("not poisoned") {
            return Err(StoreError::Failed(
                "InternalError: We encountered an internal error".into(),
            ));
        }
        Ok(())
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }
}

impl ArchiveStore for InMemoryArchive {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        _content_type: &'static str,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut budget = self.puts_before_failing.lock().expect("not poisoned");
        if let Some(left) = budget.as_mut() {
            if *left == 0 {
                return Err(StoreError::Failed(
                    "InternalError: We encountered an internal error".into(),
                ));
            }
            *left -= 1;
        }
        self.objects
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), body);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.objects.lock().expect("not poisoned").get(key).cloned())
    }
}
