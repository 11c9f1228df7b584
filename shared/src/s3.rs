//! Reading one S3 object whole, for the functions that keep small JSON
//! documents in S3 (rds-log-rotator's archive manifests, transcode-launcher's
//! status objects). A missing key is `None`, not an error. Feature `s3`.

use crate::aws::absent_as_none;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStreamError;

/// Which step of the read failed; each caller reports the two its own way.
#[derive(Debug)]
pub enum GetObjectFailure {
    /// GetObject itself was refused or never answered (boxed: the SDK's
    /// error is large, and the usual answer is `Ok`).
    Call(Box<SdkError<GetObjectError, HttpResponse>>),
    /// The answer's body broke off while it was read.
    Body(ByteStreamError),
}

/// The bytes of `bucket`/`key`, or `None` when S3 answers NoSuchKey (which
/// it does only to a caller with s3:ListBucket; without it, a missing key
/// is a 403 and so an error).
pub async fn get_object_bytes(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, GetObjectFailure> {
    let answer = client.get_object().bucket(bucket).key(key).send().await;
    let Some(object) = absent_as_none(answer, GetObjectError::is_no_such_key)
        .map_err(|e| GetObjectFailure::Call(Box::new(e)))?
    else {
        return Ok(None);
    };
    let body = object
        .body
        .collect()
        .await
        .map_err(GetObjectFailure::Body)?;
    Ok(Some(body.into_bytes().to_vec()))
}
