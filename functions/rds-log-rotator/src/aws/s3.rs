//! Archives in S3.

use crate::ports::{ArchiveStore, StoreError};
use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use shared::s3::{GetObjectFailure, get_object_bytes};

/// An S3 client; path-style addressing for local emulators such as moto.
pub fn client(sdk: &SdkConfig, force_path_style: bool) -> Client {
    Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(force_path_style)
            .build(),
    )
}

pub struct S3Store {
    pub client: Client,
    pub bucket: String,
}

fn error<E: std::error::Error + 'static>(e: E) -> StoreError {
    StoreError::Failed(shared::aws::error_text(&e))
}

impl ArchiveStore for S3Store {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &'static str,
    ) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(error)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        get_object_bytes(&self.client, &self.bucket, key)
            .await
            .map_err(|failure| match failure {
                GetObjectFailure::Call(e) => error(e),
                GetObjectFailure::Body(e) => error(e),
            })
    }
}
