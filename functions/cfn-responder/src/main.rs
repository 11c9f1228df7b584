use cfn_responder::aws::dynamodb::{DynamoOwners, DynamoStore};
use cfn_responder::aws::ec2::Ec2Images;
use cfn_responder::aws::ses::SesV1;
use cfn_responder::cfn::HttpsPut;
use cfn_responder::config::{Config, url_policy};
use cfn_responder::fallback::{LocalOwners, LocalStore, Owners, Store};
use cfn_responder::handler;
use cfn_responder::resource::Registry;
use cfn_responder::resources::ami_lookup::AmiLookup;
use cfn_responder::resources::ses_identity_notifications::SesIdentityNotifications;
use cfn_responder::responder::{Responder, Settings};
use lambda_runtime::service_fn;
use shared::config::EnvReader;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::logging::init_for(cfn_responder::FUNCTION_NAME);
    let responder = match Config::from_env(EnvReader::from_env()) {
        Ok(config) => {
            let sdk = shared::aws::load_sdk_config().await;
            // The idempotency table also keeps who set which SES topic.
            let (store, owners) = match &config.idempotency_table {
                Some(table) => {
                    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
                    (
                        Store::Dynamo(DynamoStore::new(dynamodb.clone(), table)),
                        Owners::Dynamo(DynamoOwners::new(dynamodb, table)),
                    )
                }
                None => (
                    Store::Local(LocalStore::default()),
                    Owners::Local(LocalOwners::default()),
                ),
            };
            let registry = Registry::new()
                .register(AmiLookup::new(Ec2Images(aws_sdk_ec2::Client::new(&sdk))))
                .register(SesIdentityNotifications::with_owners(
                    SesV1(aws_sdk_ses::Client::new(&sdk)),
                    owners,
                ));
            Responder::new(registry, store, HttpsPut::default(), config.settings)
        }
        // Not fatal: a dead init would leave every stack waiting an hour.
        Err(e) => {
            tracing::error!(error = %e, "initialisation failed; every request will be answered FAILED");
            let settings = Settings {
                url_policy: url_policy(&mut EnvReader::from_env()),
                ..Settings::default()
            };
            Responder::failed_init(
                e.to_string(),
                Store::Local(LocalStore::default()),
                HttpsPut::default(),
                settings,
            )
        }
    };
    let responder = &responder;
    lambda_runtime::run(service_fn(shared::runtime::observed(
        cfn_responder::FUNCTION_NAME,
        move |event| handler::handle(responder, event),
    )))
    .await
}
