//! The two log tables and what RDS calls them.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Log {
    Slow,
    General,
}

impl Log {
    pub const ALL: [Log; 2] = [Log::Slow, Log::General];

    pub fn name(self) -> &'static str {
        match self {
            Log::Slow => "slow",
            Log::General => "general",
        }
    }

    pub fn parse(name: &str) -> Option<Log> {
        match name.trim() {
            "slow" => Some(Log::Slow),
            "general" => Some(Log::General),
            _ => None,
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Log::Slow => "slow_log",
            Log::General => "general_log",
        }
    }

    pub fn backup_table(self) -> &'static str {
        match self {
            Log::Slow => "slow_log_backup",
            Log::General => "general_log_backup",
        }
    }

    /// The procedure RDS provides: it drops the backup table, renames the
    /// live table to it and starts an empty one.
    pub fn rotate_procedure(self) -> &'static str {
        match self {
            Log::Slow => "rds_rotate_slow_log",
            Log::General => "rds_rotate_general_log",
        }
    }

    /// The server variable that turns the log on.
    pub fn enabled_variable(self) -> &'static str {
        match self {
            Log::Slow => "slow_query_log",
            Log::General => "general_log",
        }
    }

    /// The column holding when the row was logged.
    pub fn time_column(self) -> &'static str {
        match self {
            Log::Slow => "start_time",
            Log::General => "event_time",
        }
    }
}
