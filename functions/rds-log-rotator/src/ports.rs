//! The seams of the domain: what the rotator asks of a MySQL server
//! ([`LogDb`]), of the archive ([`ArchiveStore`]) and of the fleet
//! ([`Connector`]), and how each can fail. Adapters live in `mysql.rs` and
//! `aws/`.

use crate::log_table::Log;
use crate::target::Target;
use std::future::Future;

/// One row as the server sent it: each column's text, or NULL.
pub type Row = Vec<Option<Vec<u8>>>;

/// A statement that failed or went unanswered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    /// What the server or the driver said.
    #[error("{0}")]
    Failed(String),
    #[error("{statement}: no answer within {secs} s")]
    TimedOut { statement: String, secs: u64 },
}

/// The rows of one SELECT, as the server sends them.
pub trait RowStream: Send {
    fn columns(&self) -> &[String];
    /// The next row; None at the end.
    fn next(&mut self) -> impl Future<Output = Result<Option<Row>, DbError>> + Send;
}

pub trait LogDb: Send {
    fn server_state(
        &mut self,
    ) -> impl Future<Output = Result<crate::preflight::ServerState, DbError>> + Send;
    /// GET_LOCK(name, 0): false when another session holds it.
    fn try_lock(&mut self, name: &str) -> impl Future<Output = Result<bool, DbError>> + Send;
    fn release_lock(&mut self, name: &str) -> impl Future<Output = Result<(), DbError>> + Send;
    /// Rows in `mysql.<table>`, or None when the table does not exist.
    fn count(&mut self, table: &str) -> impl Future<Output = Result<Option<u64>, DbError>> + Send;
    /// The oldest `column` value in `mysql.<table>`.
    fn oldest(
        &mut self,
        table: &str,
        column: &str,
    ) -> impl Future<Output = Result<Option<String>, DbError>> + Send;
    /// The first row of `mysql.<table>` in storage order, with the column
    /// names; None when the table is empty or does not exist. A log table
    /// only grows at its end, so its first row names it.
    fn first_row(
        &mut self,
        table: &str,
    ) -> impl Future<Output = Result<Option<(Vec<String>, Row)>, DbError>> + Send;
    /// Every row of `mysql.<table>` from its first, in storage order (log
    /// tables are append-only CSV files, so the order of a backup table never
    /// changes), from one SELECT streamed row by row: never all in memory,
    /// and the table is walked once whatever the part size. The first row
    /// read names the table the rest come from.
    fn rows(&mut self, table: &str)
    -> impl Future<Output = Result<Self::Rows<'_>, DbError>> + Send;
    type Rows<'a>: RowStream
    where
        Self: 'a;
    /// CALL mysql.rds_rotate_<log>_log.
    fn rotate(&mut self, log: Log) -> impl Future<Output = Result<(), DbError>> + Send;
}

/// A put or get the archive refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// What the store answered.
    #[error("{0}")]
    Failed(String),
}

/// Where archives, digests and watermarks go.
pub trait ArchiveStore: Send + Sync {
    fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &'static str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// None when there is no such object.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;
}

/// Why the targets of a run cannot be listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetsError {
    #[error("instance {0:?} is not in DB_INSTANCES")]
    NotConfigured(String),
    #[error("instance {id:?} is not a MySQL or MariaDB instance tagged {key}={value}")]
    NotDiscovered {
        id: String,
        key: String,
        value: String,
    },
    /// DescribeDBInstances failed.
    #[error("{0}")]
    Describe(String),
}

/// Why one target could not be reached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// DescribeDBInstances failed.
    #[error("{0}")]
    Describe(String),
    #[error("DescribeDBInstances gave no endpoint for {0}")]
    NoEndpoint(String),
    /// The password could not be had: its secret or the IAM token.
    #[error("{0}")]
    Login(String),
    #[error("IAM database authentication needs TLS, but DB_TLS=disabled")]
    IamNeedsTls,
    #[error("{address}: no handshake within {secs} s")]
    NoHandshake { address: String, secs: u64 },
    /// TCP, TLS or the MySQL handshake failed.
    #[error("{address}: {reason}")]
    Handshake { address: String, reason: String },
}

/// A connection and login ready for one target.
pub trait Connector: Send + Sync {
    type Db: LogDb;
    /// The targets to run: `only` (from a manual invoke) or all.
    fn targets(
        &self,
        only: Option<&[String]>,
    ) -> impl Future<Output = Result<Vec<Target>, TargetsError>> + Send;
    fn connect(
        &self,
        target: &Target,
    ) -> impl Future<Output = Result<Self::Db, ConnectError>> + Send;
}
