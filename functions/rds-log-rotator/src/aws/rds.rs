//! The RDS adapter: targets from the configuration or DescribeDBInstances,
//! logins from Secrets Manager or IAM database authentication tokens, one
//! connection each.

use crate::aws::secrets_manager::login_of;
use crate::config::{Config, Tls};
use crate::mysql::MySqlDb;
use crate::ports::{ConnectError, Connector, TargetsError};
use crate::target::Target;
use aws_config::SdkConfig;
use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config as TokenConfig};
use aws_sdk_rds::config::Region;
use mysql_async::{OptsBuilder, SslOpts};
use std::path::PathBuf;

pub struct RdsConnector {
    pub sdk: SdkConfig,
    pub rds: aws_sdk_rds::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub config: Config,
}

const ENGINES: [&str; 2] = ["mysql", "mariadb"];

/// TCP, TLS and the MySQL handshake: seconds on a healthy instance.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An IAM database authentication token: a SigV4-presigned `connect` for
/// `user` at `host:port`, valid 900 s, used as the password over TLS.
pub async fn iam_token(
    sdk: &SdkConfig,
    host: &str,
    port: u16,
    user: &str,
    region: &str,
) -> Result<String, String> {
    let config = TokenConfig::builder()
        .hostname(host)
        .port(u64::from(port))
        .username(user)
        .region(Region::new(region.to_owned()))
        .expires_in(900)
        .build()
        .map_err(|e| e.to_string())?;
    AuthTokenGenerator::new(config)
        .auth_token(sdk)
        .await
        .map(|t| t.as_str().to_owned())
        .map_err(|e| format!("making the IAM auth token: {e}"))
}

impl RdsConnector {
    async fn describe(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<aws_sdk_rds::types::DbInstance>, String> {
        let mut pages = self
            .rds
            .describe_db_instances()
            .set_db_instance_identifier(id.map(str::to_owned))
            .into_paginator()
            .send();
        let mut instances = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| shared::aws::error_text(&e))?;
            instances.extend(page.db_instances().iter().cloned());
        }
        Ok(instances)
    }
}

/// A MySQL or MariaDB instance carrying the discovery tag.
pub fn is_rotatable(instance: &aws_sdk_rds::types::DbInstance, key: &str, value: &str) -> bool {
    ENGINES.contains(&instance.engine().unwrap_or_default())
        && instance
            .tag_list()
            .iter()
            .any(|t| t.key() == Some(key) && t.value() == Some(value))
}

fn endpoint(instance: &aws_sdk_rds::types::DbInstance) -> Option<(String, u16)> {
    let endpoint = instance.endpoint()?;
    Some((
        endpoint.address()?.to_owned(),
        u16::try_from(endpoint.port()?).ok()?,
    ))
}

impl Connector for RdsConnector {
    type Db = MySqlDb;

    async fn targets(&self, only: Option<&[String]>) -> Result<Vec<Target>, TargetsError> {
        let configured = &self.config.targets;
        if !configured.is_empty() {
            let chosen: Vec<Target> = configured
                .iter()
                .filter(|t| only.is_none_or(|ids| ids.contains(&t.id)))
                .cloned()
                .collect();
            if let Some(missing) = only.and_then(|ids| {
                ids.iter()
                    .find(|id| !configured.iter().any(|t| &t.id == *id))
            }) {
                return Err(TargetsError::NotConfigured(missing.clone()));
            }
            return Ok(chosen);
        }
        let (key, value) = &self.config.discovery_tag;
        let mut targets = Vec::new();
        for instance in self.describe(None).await.map_err(TargetsError::Describe)? {
            let id = instance
                .db_instance_identifier()
                .unwrap_or_default()
                .to_owned();
            if !is_rotatable(&instance, key, value) || only.is_some_and(|ids| !ids.contains(&id)) {
                continue;
            }
            targets.push(Target {
                secret_arn: crate::config::secret_for(
                    &self.config.secret_arns,
                    self.config.default_secret.as_ref(),
                    &id,
                ),
                endpoint: endpoint(&instance),
                id,
            });
        }
        if let Some(missing) =
            only.and_then(|ids| ids.iter().find(|id| !targets.iter().any(|t| &t.id == *id)))
        {
            return Err(TargetsError::NotDiscovered {
                id: missing.clone(),
                key: key.clone(),
                value: value.clone(),
            });
        }
        Ok(targets)
    }

    async fn connect(&self, target: &Target) -> Result<MySqlDb, ConnectError> {
        let (host, port) = match &target.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => self
                .describe(Some(&target.id))
                .await
                .map_err(ConnectError::Describe)?
                .first()
                .and_then(endpoint)
                .ok_or_else(|| ConnectError::NoEndpoint(target.id.clone()))?,
        };
        let mut user = self.config.db_user.clone();
        let password = match &target.secret_arn {
            Some(arn) => {
                let (secret_user, password) = login_of(&self.secrets, arn)
                    .await
                    .map_err(ConnectError::Login)?;
                if let Some(secret_user) = secret_user {
                    user = secret_user;
                }
                password
            }
            None => {
                if self.config.tls == Tls::Disabled {
                    return Err(ConnectError::IamNeedsTls);
                }
                iam_token(&self.sdk, &host, port, &user, &self.config.region)
                    .await
                    .map_err(ConnectError::Login)?
            }
        };
        let ssl = match &self.config.tls {
            Tls::Disabled => None,
            Tls::Required { ca_file } => Some(match ca_file {
                Some(path) => SslOpts::default().with_root_certs(vec![PathBuf::from(path).into()]),
                None => SslOpts::default(),
            }),
        };
        let opts = OptsBuilder::default()
            .ip_or_hostname(host.clone())
            .tcp_port(port)
            .user(Some(user))
            .pass(Some(password))
            .prefer_socket(false)
            // IAM tokens travel as a cleartext password, inside TLS.
            .enable_cleartext_plugin(target.secret_arn.is_none())
            .ssl_opts(ssl);
        // mysql_async has no connect timeout: a server that accepts TCP and
        // never sends its handshake would hold a concurrency slot until the
        // invocation's cut-off and starve the targets queued behind it.
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, mysql_async::Conn::new(opts))
            .await
            .map_err(|_| ConnectError::NoHandshake {
                address: format!("{host}:{port}"),
                secs: CONNECT_TIMEOUT.as_secs(),
            })?
            .map_err(|e| ConnectError::Handshake {
                address: format!("{host}:{port}"),
                reason: e.to_string(),
            })?;
        Ok(MySqlDb { conn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::config::Credentials;

    #[tokio::test]
    async fn iam_tokens_are_presigned_connects_valid_900_seconds() {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            ))
            .region(Region::new("eu-west-1"))
            .load()
            .await;
        let token = iam_token(
            &sdk,
            "orders.abc123.eu-west-1.rds.amazonaws.com",
            3306,
            "log_rotator",
            "eu-west-1",
        )
        .await
        .unwrap();
        assert!(
            token.starts_with("orders.abc123.eu-west-1.rds.amazonaws.com:3306/?"),
            "{token}"
        );
        for part in [
            "Action=connect",
            "DBUser=log_rotator",
            "X-Amz-Expires=900",
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F",
            "%2Feu-west-1%2Frds-db%2Faws4_request",
            "X-Amz-Signature=",
        ] {
            assert!(token.contains(part), "{part}: {token}");
        }
        assert!(!token.starts_with("https://"));
    }

    #[test]
    fn discovery_takes_tagged_mysql_and_mariadb_only() {
        use aws_sdk_rds::types::{DbInstance, Tag};
        let instance = |engine: &str, tag: (&str, &str)| {
            DbInstance::builder()
                .engine(engine)
                .tag_list(Tag::builder().key(tag.0).value(tag.1).build())
                .build()
        };
        let on = ("log-rotation", "enabled");
        assert!(is_rotatable(&instance("mysql", on), on.0, on.1));
        assert!(is_rotatable(&instance("mariadb", on), on.0, on.1));
        assert!(!is_rotatable(&instance("postgres", on), on.0, on.1));
        assert!(!is_rotatable(&instance("aurora-mysql", on), on.0, on.1));
        assert!(!is_rotatable(
            &instance("mysql", ("log-rotation", "disabled")),
            on.0,
            on.1
        ));
    }
}
