//! The CloudFormation custom-resource protocol: what a request carries, what
//! the response must look like, and how it reaches CloudFormation.

mod envelope;
mod fit;
pub mod physical_id;
pub mod props;
mod put;
mod response;
mod url;

pub use envelope::{Envelope, EnvelopeError};
pub use fit::{FitReport, MAX_RESPONSE_BYTES, MIN_REASON_CHARS, fit_response};
pub use put::{
    HttpsPut, PutError, PutOutcome, PutStats, PutTransport, RetryPolicy, put_with_retries,
    put_with_retries_counted,
};
pub use response::{CfnResponse, CfnStatus};
pub use url::{ResponseUrlError, ResponseUrlPolicy};
