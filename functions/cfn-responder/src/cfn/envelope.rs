use serde_json::Value;

/// The fields needed to answer a request, read leniently from the raw event
/// so that even a malformed request can be answered FAILED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub response_url: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub request_type: Option<String>,
    pub resource_type: Option<String>,
    pub physical_resource_id: Option<String>,
}

/// The event cannot be answered at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("event is not a JSON object, so it is not a CloudFormation request")]
    NotAnObject,
    #[error("event has no ResponseURL string, so there is nowhere to answer")]
    NoResponseUrl,
}

impl Envelope {
    pub fn from_event(event: &Value) -> Result<Self, EnvelopeError> {
        let obj = event.as_object().ok_or(EnvelopeError::NotAnObject)?;
        let text = |name: &str| obj.get(name).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            response_url: text("ResponseURL").ok_or(EnvelopeError::NoResponseUrl)?,
            stack_id: text("StackId").unwrap_or_default(),
            request_id: text("RequestId").unwrap_or_default(),
            logical_resource_id: text("LogicalResourceId").unwrap_or_default(),
            request_type: text("RequestType"),
            resource_type: text("ResourceType"),
            physical_resource_id: text("PhysicalResourceId").filter(|id| !id.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_is_there() {
        let env = Envelope::from_event(&json!({
            "ResponseURL": "https://x.s3.amazonaws.com/a", "StackId": "s", "RequestId": "r",
            "LogicalResourceId": "L", "RequestType": "Delete", "PhysicalResourceId": ""
        }))
        .unwrap();
        assert_eq!(env.request_type.as_deref(), Some("Delete"));
        assert_eq!(env.physical_resource_id, None);
        assert_eq!(
            Envelope::from_event(&json!({"StackId": "s"})).unwrap_err(),
            EnvelopeError::NoResponseUrl
        );
        assert_eq!(
            Envelope::from_event(&json!([1])).unwrap_err(),
            EnvelopeError::NotAnObject
        );
    }
}
