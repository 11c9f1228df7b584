//! The jobs' status.json objects through the S3 API.

use crate::ports::{StatusError, StatusStore};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use shared::s3::{GetObjectFailure, get_object_bytes};

pub struct S3Status {
    client: Client,
    bucket: String,
}

impl S3Status {
    pub fn new(client: Client, bucket: String) -> Self {
        Self { client, bucket }
    }
}

fn error<E: std::error::Error + 'static>(call: &'static str, e: E) -> StatusError {
    StatusError::Call {
        call,
        reason: shared::aws::error_text(&e),
    }
}

impl StatusStore for S3Status {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StatusError> {
        get_object_bytes(&self.client, &self.bucket, key)
            .await
            .map_err(|failure| match failure {
                GetObjectFailure::Call(e) => error("GetObject", e),
                GetObjectFailure::Body(e) => StatusError::Body(e.to_string()),
            })
    }

    async fn put(&self, key: &str, body: &str) -> Result<(), StatusError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| error("PutObject", e))?;
        Ok(())
    }
}
