//! SES bounces and complaints become a suppression list: hard bounces and
//! complaints suppress, soft bounces are counted and escalated, redeliveries
//! change nothing, and no email address is ever logged.
//!
//! Modules, by role:
//! - `config`: settings from the environment, every problem reported at once.
//! - `handler`: SNS and SQS invocations to notifications, and the answer.
//! - `notification`: the SES notification model; what each recipient event asks.
//! - `suppression`: the list's rules, what one event does to an address's entry.
//! - `processor`: read, decide, conditional write, per recipient; the metrics.
//! - `check`: "may I send to this address?", for the `ses-suppression` tool.
//! - `ports`: the traits (table, account list, clock) and their errors.
//! - `aws`: the DynamoDB table and SESv2 account-list adapters.
//! - `fallback`: production stand-ins (no account list, the system clock).
//! - `testing`: in-memory doubles (`InMemory*`), for tests and benches only.

pub mod aws;
pub mod check;
pub mod config;
pub mod fallback;
pub mod handler;
pub mod notification;
pub mod ports;
pub mod processor;
pub mod suppression;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The function's name in logs (`service`) and metrics (`Function`).
pub const FUNCTION_NAME: &str = "ses-bounce-handler";
