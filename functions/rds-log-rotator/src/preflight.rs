//! Whether a log can be rotated here: what the server reports before a
//! rotation.

use crate::log_table::Log;

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
