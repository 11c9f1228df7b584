//! SDK configuration, loaded once per execution environment.

use aws_config::{BehaviorVersion, Region, SdkConfig};

/// Loads the SDK configuration with the latest behaviour version.
///
/// `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_<SERVICE>`
/// variables are honoured by aws-config itself, which is how local runs point
/// the clients at moto.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The same configuration aimed at another region, for clients that must run
/// there (CopySnapshot is called in the destination region).
pub fn config_for_region(base: &SdkConfig, region: &str) -> SdkConfig {
    base.to_builder()
        .region(Region::new(region.to_owned()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_override_keeps_the_rest() {
        let base = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:5000")
            .behavior_version(BehaviorVersion::latest())
            .build();
        let other = config_for_region(&base, "us-west-2");
        assert_eq!(other.region().map(|r| r.as_ref()), Some("us-west-2"));
        assert_eq!(other.endpoint_url(), Some("http://127.0.0.1:5000"));
    }
}
