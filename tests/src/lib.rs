//! Harness for integration tests, demo and benchmarks: real processes and
//! small stand-in servers, all bound to 127.0.0.1.

pub mod dynamodb;
pub mod emulator;
pub mod events;
pub mod function;
pub mod http;
pub mod lambda_env;
pub mod lambda_invoke;
pub mod mariadb;
pub mod moto;
pub mod process;
pub mod running;
pub mod runtime_api;
pub mod sink;
