//! The test kit: stand-ins, harnesses and tools for every function's
//! integration tests, the cross-function tests in `tests/tests`, `make demo`
//! and `make bench`. Everything binds to 127.0.0.1.
//!
//! Harnesses (start a real function and drive it):
//! - [`events`]: the sample events under `events/<function>/`.
//! - [`running`]: `Running`, a function binary under the Runtime API stand-in, and its `Env`.
//! - [`function`]: `FunctionProcess`, one function process and its captured stdout.
//! - [`emulator`]: `cargo lambda watch`, the emulator `make demo` uses.
//!
//! Stand-ins (play an AWS side, with faults on demand):
//! - [`runtime_api`]: the Lambda Runtime API; records hand-out and answer times.
//! - [`dynamodb`]: DynamoDB's JSON protocol with atomic conditions and injected faults.
//! - [`sink`]: CloudFormation's ResponseURL; records PUTs, answers as scripted.
//! - [`lambda_invoke`]: Lambda's Invoke API, for lambda-redrive's tests.
//! - [`http`]: the HTTP/1.1 server the stand-ins share, a forwarding proxy, a server that never answers.
//! - [`form`]: the form-encoded bodies of query-protocol calls (EC2, SES), decoded.
//!
//! Real dependencies (processes the tests start):
//! - [`moto`]: moto in server mode, and SDK settings for local endpoints.
//! - [`mariadb`]: a throwaway MariaDB logging to tables as RDS does.
//! - [`process`]: child processes that die with the test; workspace paths; the template.
//!
//! Captures:
//! - [`logs`]: log lines written to memory, for tests of a subscriber's output.
//!
//! Readers (of the project's own files):
//! - [`lambda_env`]: each function's local environment from its Cargo.toml (binary: `lambda-env`).
//! - [`template`]: template.yaml's parameter defaults as CloudFormation passes them.
//!
//! Benchmarks:
//! - [`bench`]: BENCHMARKS.md filled from its template; the 10,000-record Kinesis batch.
//!
//! Binaries in `src/bin` are the scripts' tools: `cfn-response-sink`, `local-mariadb`,
//! `lambda-bench`, `lambda-env`, `demo-view`.

pub mod bench;
pub mod dynamodb;
pub mod emulator;
pub mod events;
pub mod form;
pub mod function;
pub mod http;
pub mod lambda_env;
pub mod lambda_invoke;
pub mod logs;
pub mod mariadb;
pub mod moto;
pub mod process;
pub mod running;
pub mod runtime_api;
pub mod sink;
pub mod template;
