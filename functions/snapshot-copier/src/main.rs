use lambda_runtime::service_fn;
use shared::config::EnvReader;
use snapshot_copier::claims::{ClaimStore, DynamoClaims};
use snapshot_copier::copier::Copier;
use snapshot_copier::ec2::Ec2Regions;
use snapshot_copier::{config, handler};

/// The function's name in logs (`service`) and metrics (`Function`).
const FUNCTION_NAME: &str = "snapshot-copier";

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::logging::init_for(FUNCTION_NAME);
    let settings = match config::from_env(EnvReader::from_env()) {
        Ok(settings) => settings,
        Err(e) => shared::runtime::fail_init("InvalidConfiguration", &e).await,
    };
    let sdk = shared::aws::load_sdk_config().await;
    let claims = match &settings.claim_table {
        Some(table) => ClaimStore::Dynamo(DynamoClaims {
            client: aws_sdk_dynamodb::Client::new(&sdk),
            table: table.clone(),
        }),
        None => {
            tracing::warn!("CLAIM_TABLE is not set: copies are claimed within this process only");
            ClaimStore::default()
        }
    };
    let copier = Copier::new(Ec2Regions::new(sdk), settings).with_claims(claims);
    let copier = &copier;
    lambda_runtime::run(service_fn(shared::runtime::observed(
        FUNCTION_NAME,
        move |event| handler::handle(copier, event),
    )))
    .await
}
