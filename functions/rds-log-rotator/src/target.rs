//! Which servers to rotate, as configured or discovered.

/// A server as configured or discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The DB instance identifier.
    pub id: String,
    /// host and port; None means "ask DescribeDBInstances".
    pub endpoint: Option<(String, u16)>,
    /// A Secrets Manager secret holding the password; None means IAM
    /// database authentication.
    pub secret_arn: Option<String>,
}

/// RDS identifiers: letters, digits and hyphens, starting with a letter.
pub fn is_instance_id(id: &str) -> bool {
    id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `id` or `id=host:port`.
pub fn parse_entry(entry: &str) -> Result<(String, Option<(String, u16)>), String> {
    let (id, endpoint) = match entry.split_once('=') {
        Some((id, endpoint)) => (id.trim(), Some(endpoint.trim())),
        None => (entry.trim(), None),
    };
    if !is_instance_id(id) {
        return Err(format!("{id:?} is not a DB instance identifier"));
    }
    let endpoint = match endpoint {
        None => None,
        Some(e) => {
            let (host, port) = e
                .rsplit_once(':')
                .ok_or_else(|| format!("{id}: endpoint {e:?} is not host:port"))?;
            let port = port
                .parse()
                .map_err(|_| format!("{id}: port {port:?} is not a number"))?;
            if host.is_empty() {
                return Err(format!("{id}: endpoint {e:?} has no host"));
            }
            Some((host.to_owned(), port))
        }
    };
    Ok((id.to_owned(), endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries() {
        assert_eq!(parse_entry("prod-db").unwrap(), ("prod-db".into(), None));
        assert_eq!(
            parse_entry(" local=127.0.0.1:3307 ").unwrap(),
            ("local".into(), Some(("127.0.0.1".into(), 3307)))
        );
        assert!(parse_entry("1db").is_err());
        assert!(parse_entry("db=host").unwrap_err().contains("host:port"));
        assert!(parse_entry("db=host:x").unwrap_err().contains("port"));
    }
}
