//! SES bounces and complaints become a suppression list: hard bounces and
//! complaints suppress, soft bounces are counted and escalated, redeliveries
//! change nothing, and no email address is ever logged.

pub mod account;
pub mod check;
pub mod config;
pub mod handler;
pub mod notification;
pub mod processor;
pub mod store;
pub mod suppression;
