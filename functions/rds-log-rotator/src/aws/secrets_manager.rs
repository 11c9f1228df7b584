//! The Secrets Manager adapter: a database login from a secret.

/// A secret's password: RDS's JSON (`{"username": ..., "password": ...}`)
/// or the plain string.
pub fn password_of(secret: &str) -> Result<(Option<String>, String), String> {
    match serde_json::from_str::<serde_json::Value>(secret) {
        Ok(serde_json::Value::Object(fields)) => {
            let password = fields
                .get("password")
                .and_then(|p| p.as_str())
                .ok_or("the secret is JSON without a \"password\" string")?;
            let user = fields
                .get("username")
                .and_then(|u| u.as_str())
                .map(str::to_owned);
            Ok((user, password.to_owned()))
        }
        _ => Ok((None, secret.to_owned())),
    }
}

/// The login in secret `arn`: its user (if the secret names one) and password.
pub async fn login_of(
    secrets: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<(Option<String>, String), String> {
    let secret = secrets
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| format!("GetSecretValue {arn}: {}", shared::aws::error_text(&e)))?;
    let text = secret
        .secret_string()
        .ok_or_else(|| format!("secret {arn} has no SecretString"))?;
    password_of(text).map_err(|e| format!("secret {arn}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        assert_eq!(
            password_of(r#"{"username": "admin", "password": "p'w"}"#).unwrap(),
            (Some("admin".into()), "p'w".into())
        );
        assert_eq!(password_of("plain").unwrap(), (None, "plain".into()));
        assert!(
            password_of(r#"{"user": "x"}"#)
                .unwrap_err()
                .contains("password")
        );
    }
}
