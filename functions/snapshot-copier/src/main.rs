use lambda_runtime::service_fn;
use snapshot_copier::aws::dynamodb::DynamoClaims;
use snapshot_copier::aws::ec2::Ec2Regions;
use snapshot_copier::config::Config;
use snapshot_copier::copier::Copier;
use snapshot_copier::fallback::ClaimStore;
use snapshot_copier::{FUNCTION_NAME, handler};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (config, sdk) = shared::runtime::start(FUNCTION_NAME, Config::from_env).await;
    let claims = match config.claim_table {
        Some(table) => ClaimStore::Dynamo(DynamoClaims {
            client: aws_sdk_dynamodb::Client::new(&sdk),
            table,
        }),
        None => {
            tracing::warn!("CLAIM_TABLE is not set: copies are claimed within this process only");
            ClaimStore::default()
        }
    };
    let copier = Copier::new(Ec2Regions::new(sdk), config.copier).with_claims(claims);
    let copier = &copier;
    lambda_runtime::run(service_fn(shared::runtime::observed(
        FUNCTION_NAME,
        move |event| handler::handle(copier, event),
    )))
    .await
}
