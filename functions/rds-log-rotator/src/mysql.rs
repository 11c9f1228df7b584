//! The log tables through a MySQL connection (text protocol, so every value
//! arrives as the server's own text).

use crate::log_table::Log;
use crate::ports::{DbError, LogDb, Row, RowStream};
use crate::preflight::ServerState;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};
use std::future::Future;
use std::time::Duration;

pub struct MySqlDb {
    pub conn: Conn,
}

fn error(e: mysql_async::Error) -> DbError {
    DbError::Failed(e.to_string())
}

/// Table and column names come from [`Log`], never from input; quoting
/// still keeps them identifiers.
fn quoted(identifier: &str) -> String {
    format!("`{}`", identifier.replace('`', "``"))
}

fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Longer than a Lambda invocation can last.
const STREAM_WRITE_TIMEOUT_SECS: u32 = 900;

/// mysql_async has no read timeout: a server that stalls mid-statement would
/// hold its concurrency slot until the invocation's cut-off. Short statements
/// get this bound; it leaves room for a COUNT(*) scanning a large CSV log
/// table. The streamed SELECT is bounded by the cut-off instead.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// `statement` within [`STATEMENT_TIMEOUT`], or an error naming it.
async fn bounded<T>(
    statement: &str,
    run: impl Future<Output = Result<T, mysql_async::Error>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, run).await {
        Ok(result) => result.map_err(error),
        Err(_) => Err(DbError::TimedOut {
            statement: statement.to_owned(),
            secs: STATEMENT_TIMEOUT.as_secs(),
        }),
    }
}

/// A text-protocol result read one packet at a time (mysql_async's
/// `QueryResult::next`), so memory holds one row, not the result.
pub struct MySqlRows<'a> {
    result: mysql_async::QueryResult<'a, 'static, mysql_async::TextProtocol>,
    columns: Vec<String>,
}

impl RowStream for MySqlRows<'_> {
    fn columns(&self) -> &[String] {
        &self.columns
    }

    async fn next(&mut self) -> Result<Option<Row>, DbError> {
        let Some(row) = self.result.next().await.map_err(error)? else {
            return Ok(None);
        };
        Ok(Some(
            row.unwrap()
                .into_iter()
                .map(|value| match value {
                    Value::NULL => None,
                    Value::Bytes(bytes) => Some(bytes),
                    other => Some(other.as_sql(true).into_bytes()),
                })
                .collect(),
        ))
    }
}

impl MySqlDb {
    async fn select(&mut self, query: String) -> Result<MySqlRows<'_>, DbError> {
        let result = self.conn.query_iter(query).await.map_err(error)?;
        let columns = result
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        Ok(MySqlRows { result, columns })
    }

    async fn exists(&mut self, table: &str) -> Result<bool, DbError> {
        let exists: Option<i64> = bounded(
            "looking up the table",
            self.conn.query_first(format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = {}",
                sql_string(table)
            )),
        )
        .await?;
        Ok(exists.unwrap_or(0) > 0)
    }
}

impl LogDb for MySqlDb {
    async fn server_state(&mut self) -> Result<ServerState, DbError> {
        let (log_output, slow, general, read_only): (String, i64, i64, i64) = bounded(
            "SELECT @@log_output",
            self.conn
                .query_first("SELECT @@log_output, @@slow_query_log, @@general_log, @@read_only"),
        )
        .await?
        .ok_or_else(|| DbError::Failed("SELECT @@log_output returned no row".into()))?;
        let names: Vec<String> = Log::ALL
            .iter()
            .map(|l| sql_string(l.rotate_procedure()))
            .collect();
        let procedures: Vec<String> = bounded(
            "listing the rotate procedures",
            self.conn.query(format!(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES \
                 WHERE ROUTINE_SCHEMA = 'mysql' AND ROUTINE_TYPE = 'PROCEDURE' AND ROUTINE_NAME IN ({})",
                names.join(", ")
            )),
        )
        .await?;
        Ok(ServerState {
            log_output,
            slow_log_on: slow == 1,
            general_log_on: general == 1,
            read_only: read_only == 1,
            procedures,
        })
    }

    async fn try_lock(&mut self, name: &str) -> Result<bool, DbError> {
        let got: Option<Option<i64>> = bounded(
            "GET_LOCK",
            self.conn
                .query_first(format!("SELECT GET_LOCK({}, 0)", sql_string(name))),
        )
        .await?;
        Ok(got.flatten() == Some(1))
    }

    async fn release_lock(&mut self, name: &str) -> Result<(), DbError> {
        bounded(
            "RELEASE_LOCK",
            self.conn
                .query_drop(format!("SELECT RELEASE_LOCK({})", sql_string(name))),
        )
        .await
    }

    async fn count(&mut self, table: &str) -> Result<Option<u64>, DbError> {
        if !self.exists(table).await? {
            return Ok(None);
        }
        let rows: Option<u64> = bounded(
            "SELECT COUNT(*)",
            self.conn
                .query_first(format!("SELECT COUNT(*) FROM mysql.{}", quoted(table))),
        )
        .await?;
        Ok(Some(rows.unwrap_or(0)))
    }

    async fn oldest(&mut self, table: &str, column: &str) -> Result<Option<String>, DbError> {
        let oldest: Option<Option<String>> = bounded(
            "SELECT MIN(time)",
            self.conn.query_first(format!(
                "SELECT CAST(MIN({}) AS CHAR) FROM mysql.{}",
                quoted(column),
                quoted(table)
            )),
        )
        .await?;
        Ok(oldest.flatten())
    }

    async fn first_row(&mut self, table: &str) -> Result<Option<(Vec<String>, Row)>, DbError> {
        if !self.exists(table).await? {
            return Ok(None);
        }
        let first_row = async {
            let mut rows = self
                .select(format!("SELECT * FROM mysql.{} LIMIT 1", quoted(table)))
                .await?;
            let first = rows.next().await?;
            let columns = rows.columns;
            rows.result.drop_result().await.map_err(error)?;
            Ok(first.map(|row| (columns, row)))
        };
        match tokio::time::timeout(STATEMENT_TIMEOUT, first_row).await {
            Ok(result) => result,
            Err(_) => Err(DbError::TimedOut {
                statement: "SELECT * LIMIT 1".to_owned(),
                secs: STATEMENT_TIMEOUT.as_secs(),
            }),
        }
    }

    type Rows<'a> = MySqlRows<'a>;

    async fn rows(&mut self, table: &str) -> Result<MySqlRows<'_>, DbError> {
        // The client pauses reading while a part uploads; the server, blocked
        // writing rows meanwhile, must not give up on the connection.
        bounded(
            "SET SESSION net_write_timeout",
            self.conn.query_drop(format!(
                "SET SESSION net_write_timeout = {STREAM_WRITE_TIMEOUT_SECS}"
            )),
        )
        .await?;
        // The SELECT stays open across every part's upload: a statement time
        // limit from a parameter group would kill it on every run. Each
        // flavour refuses the other's variable.
        let version: Option<String> = bounded(
            "SELECT VERSION()",
            self.conn.query_first("SELECT VERSION()"),
        )
        .await?;
        let no_time_limit = if version.is_some_and(|v| v.contains("MariaDB")) {
            "SET SESSION max_statement_time = 0"
        } else {
            "SET SESSION max_execution_time = 0"
        };
        bounded(no_time_limit, self.conn.query_drop(no_time_limit)).await?;
        // No ORDER BY: a log table is a CSV file read front to back, and a
        // backup table is never written again, so positions are stable.
        self.select(format!("SELECT * FROM mysql.{}", quoted(table)))
            .await
    }

    async fn rotate(&mut self, log: Log) -> Result<(), DbError> {
        let call = format!("CALL mysql.{}", quoted(log.rotate_procedure()));
        bounded(&call, self.conn.query_drop(&call)).await
    }
}
