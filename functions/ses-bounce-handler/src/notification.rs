//! SES notifications, from either source, reduced to what each recipient
//! means for the suppression list.
//!
//! Identity notifications name their type in `notificationType`;
//! configuration-set event publishing uses `eventType` and adds types of its
//! own. SES adds fields over time, so parsing is lenient: unknown fields
//! are ignored and unknown types are skipped, never failed.

use serde::Deserialize;

/// The parts of an SES notification this function reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub notification_type: Option<String>,
    pub event_type: Option<String>,
    #[serde(default)]
    pub mail: Mail,
    pub bounce: Option<Bounce>,
    pub complaint: Option<Complaint>,
    pub delivery: Option<Delivery>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mail {
    #[serde(default)]
    pub message_id: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bounce {
    pub bounce_type: String,
    #[serde(default)]
    pub bounce_sub_type: String,
    pub bounced_recipients: Vec<BouncedRecipient>,
    pub feedback_id: String,
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BouncedRecipient {
    pub email_address: String,
    pub status: Option<String>,
    pub diagnostic_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Complaint {
    pub complained_recipients: Vec<ComplainedRecipient>,
    pub feedback_id: String,
    pub complaint_sub_type: Option<String>,
    pub complaint_feedback_type: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplainedRecipient {
    pub email_address: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// Why an address is suppressed; the values SESv2 takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Bounce,
    Complaint,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "BOUNCE",
            Self::Complaint => "COMPLAINT",
        }
    }
}

/// What one recipient of a notification means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A hard bounce or a complaint: never send again.
    Suppress(Reason),
    /// SES did not send (the address is on a suppression list already):
    /// record it, count nothing.
    AlreadySuppressedBySes(Reason),
    /// A soft bounce: counted, escalated past the threshold.
    SoftBounce,
    /// Kept for the record only (Undetermined, a not-spam complaint).
    Record,
    /// A delivery: clears the soft-bounce count.
    ResetSoft,
}

/// One recipient's share of a notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientEvent {
    /// Trimmed and lowercased: the table key.
    pub address: String,
    pub action: Action,
    /// `Bounce`, `Complaint` or `Delivery`.
    pub kind: &'static str,
    /// `Permanent/General`, `Transient/MailboxFull`, `abuse`, ...
    pub subtype: String,
    pub diagnostic_code: Option<String>,
    /// What makes a redelivery recognisable: the feedbackId (the mail's
    /// messageId for deliveries, which have none).
    pub idempotency_key: String,
    pub message_id: String,
    /// When SES saw it, RFC 3339, if the notification says.
    pub timestamp: Option<String>,
}

/// How classification is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// A Transient bounce with a 5.x.x recipient status is a hard bounce.
    pub transient_5xx_is_permanent: bool,
    pub reset_soft_on_delivery: bool,
}

/// What a notification amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// One event per recipient, and the (type, subtype) for metrics.
    Recipients {
        kind: &'static str,
        subtype: String,
        events: Vec<RecipientEvent>,
    },
    /// A type this function has no use for (Send, Open, Click, ...).
    Ignored { kind: String },
}

/// Why a notification cannot be read. Names the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("Message is not an SES notification: {0}")]
    Unreadable(String),
    #[error("{kind} notification has no {field} object")]
    Missing {
        kind: &'static str,
        field: &'static str,
    },
    #[error("{field} is empty")]
    Empty { field: &'static str },
}

/// The key an address is stored under.
pub fn normalize(address: &str) -> String {
    address.trim().to_lowercase()
}

/// Reads and classifies one notification (the SNS Message text).
pub fn classify(message: &str, rules: Rules) -> Result<Classified, NotificationError> {
    let notification: Notification = serde_json::from_str(message).map_err(|e| {
        NotificationError::Unreadable(shared::logging::mask_emails_in(&e.to_string()))
    })?;
    let kind = notification
        .notification_type
        .as_deref()
        .or(notification.event_type.as_deref())
        .unwrap_or("");
    let message_id = notification.mail.message_id.clone();
    match kind {
        "Bounce" => {
            let bounce = notification.bounce.ok_or(NotificationError::Missing {
                kind: "Bounce",
                field: "bounce",
            })?;
            bounce_events(bounce, message_id, rules)
        }
        "Complaint" => {
            let complaint = notification.complaint.ok_or(NotificationError::Missing {
                kind: "Complaint",
                field: "complaint",
            })?;
            complaint_events(complaint, message_id)
        }
        "Delivery" if rules.reset_soft_on_delivery => {
            let delivery = notification.delivery.ok_or(NotificationError::Missing {
                kind: "Delivery",
                field: "delivery",
            })?;
            let events = delivery
                .recipients
                .iter()
                .map(|address| RecipientEvent {
                    address: normalize(address),
                    action: Action::ResetSoft,
                    kind: "Delivery",
                    subtype: String::new(),
                    diagnostic_code: None,
                    idempotency_key: message_id.clone(),
                    message_id: message_id.clone(),
                    timestamp: delivery.timestamp.clone(),
                })
                .collect();
            Ok(Classified::Recipients {
                kind: "Delivery",
                subtype: String::new(),
                events,
            })
        }
        other => Ok(Classified::Ignored {
            kind: if other.is_empty() {
                "Unknown".to_owned()
            } else {
                other.to_owned()
            },
        }),
    }
}

fn bounce_events(
    bounce: Bounce,
    message_id: String,
    rules: Rules,
) -> Result<Classified, NotificationError> {
    if bounce.feedback_id.is_empty() {
        return Err(NotificationError::Empty {
            field: "bounce.feedbackId",
        });
    }
    let subtype = format!("{}/{}", bounce.bounce_type, bounce.bounce_sub_type);
    let events = bounce
        .bounced_recipients
        .into_iter()
        .map(|recipient| {
            let hard_status = recipient
                .status
                .as_deref()
                .is_some_and(|s| s.trim().starts_with("5."));
            let action = match (bounce.bounce_type.as_str(), bounce.bounce_sub_type.as_str()) {
                ("Permanent", "Suppressed" | "OnAccountSuppressionList") => {
                    Action::AlreadySuppressedBySes(Reason::Bounce)
                }
                ("Permanent", _) => Action::Suppress(Reason::Bounce),
                ("Transient", _) if hard_status && rules.transient_5xx_is_permanent => {
                    Action::Suppress(Reason::Bounce)
                }
                ("Transient", _) => Action::SoftBounce,
                _ => Action::Record,
            };
            RecipientEvent {
                address: normalize(&recipient.email_address),
                action,
                kind: "Bounce",
                subtype: subtype.clone(),
                diagnostic_code: recipient.diagnostic_code,
                idempotency_key: bounce.feedback_id.clone(),
                message_id: message_id.clone(),
                timestamp: bounce.timestamp.clone(),
            }
        })
        .collect();
    Ok(Classified::Recipients {
        kind: "Bounce",
        subtype,
        events,
    })
}

fn complaint_events(
    complaint: Complaint,
    message_id: String,
) -> Result<Classified, NotificationError> {
    if complaint.feedback_id.is_empty() {
        return Err(NotificationError::Empty {
            field: "complaint.feedbackId",
        });
    }
    let feedback_type = complaint
        .complaint_feedback_type
        .clone()
        .unwrap_or_default();
    let action = if complaint.complaint_sub_type.as_deref() == Some("OnAccountSuppressionList") {
        Action::AlreadySuppressedBySes(Reason::Complaint)
    } else if feedback_type == "not-spam" {
        Action::Record
    } else {
        Action::Suppress(Reason::Complaint)
    };
    let subtype = complaint
        .complaint_sub_type
        .clone()
        .unwrap_or_else(|| feedback_type.clone());
    let events = complaint
        .complained_recipients
        .into_iter()
        .map(|recipient| RecipientEvent {
            address: normalize(&recipient.email_address),
            action: action.clone(),
            kind: "Complaint",
            subtype: subtype.clone(),
            diagnostic_code: None,
            idempotency_key: complaint.feedback_id.clone(),
            message_id: message_id.clone(),
            timestamp: complaint.timestamp.clone(),
        })
        .collect();
    Ok(Classified::Recipients {
        kind: "Complaint",
        subtype,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: Rules = Rules {
        transient_5xx_is_permanent: true,
        reset_soft_on_delivery: true,
    };

    fn bounce(kind: &str, sub: &str, status: Option<&str>) -> String {
        json!({"notificationType": "Bounce", "mail": {"messageId": "m-1"},
               "bounce": {"bounceType": kind, "bounceSubType": sub, "feedbackId": "f-1",
                          "bouncedRecipients": [{"emailAddress": " Jane@Example.COM ", "status": status}]}})
        .to_string()
    }

    fn action(message: &str, rules: Rules) -> Action {
        match classify(message, rules).unwrap() {
            Classified::Recipients { events, .. } => events[0].action.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bounce_types_map_to_actions() {
        let suppress = Action::Suppress(Reason::Bounce);
        assert_eq!(
            action(&bounce("Permanent", "General", None), RULES),
            suppress
        );
        assert_eq!(
            action(&bounce("Permanent", "NoEmail", None), RULES),
            suppress
        );
        assert_eq!(
            action(
                &bounce("Permanent", "OnAccountSuppressionList", None),
                RULES
            ),
            Action::AlreadySuppressedBySes(Reason::Bounce)
        );
        assert_eq!(
            action(&bounce("Transient", "MailboxFull", Some("4.2.2")), RULES),
            Action::SoftBounce
        );
        assert_eq!(
            action(&bounce("Transient", "General", Some("5.1.1")), RULES),
            suppress
        );
        let lenient = Rules {
            transient_5xx_is_permanent: false,
            ..RULES
        };
        assert_eq!(
            action(&bounce("Transient", "General", Some("5.1.1")), lenient),
            Action::SoftBounce
        );
        assert_eq!(
            action(&bounce("Undetermined", "Undetermined", None), RULES),
            Action::Record
        );
    }

    #[test]
    fn addresses_are_normalized_and_ids_kept() {
        let Classified::Recipients {
            events, subtype, ..
        } = classify(&bounce("Permanent", "General", None), RULES).unwrap()
        else {
            panic!()
        };
        assert_eq!(events[0].address, "jane@example.com");
        assert_eq!(events[0].idempotency_key, "f-1");
        assert_eq!(events[0].message_id, "m-1");
        assert_eq!(subtype, "Permanent/General");
    }

    #[test]
    fn complaints_suppress_unless_not_spam() {
        let complaint = |feedback: &str| {
            json!({"eventType": "Complaint", "mail": {"messageId": "m"},
                   "complaint": {"feedbackId": "f", "complaintFeedbackType": feedback,
                                 "complainedRecipients": [{"emailAddress": "a@b.c"}]}})
            .to_string()
        };
        assert_eq!(
            action(&complaint("abuse"), RULES),
            Action::Suppress(Reason::Complaint)
        );
        assert_eq!(action(&complaint("not-spam"), RULES), Action::Record);
    }

    #[test]
    fn other_types_are_ignored_and_bad_ones_name_the_field() {
        let ignored = |m: serde_json::Value| classify(&m.to_string(), RULES).unwrap();
        assert_eq!(
            ignored(json!({"eventType": "DeliveryDelay", "deliveryDelay": {}})),
            Classified::Ignored {
                kind: "DeliveryDelay".into()
            }
        );
        assert_eq!(
            ignored(json!({"eventType": "Open", "extra": [1, 2]})),
            Classified::Ignored {
                kind: "Open".into()
            }
        );
        let no_reset = Rules {
            reset_soft_on_delivery: false,
            ..RULES
        };
        assert!(matches!(
            classify(
                &json!({"notificationType": "Delivery"}).to_string(),
                no_reset
            ),
            Ok(Classified::Ignored { .. })
        ));
        let err = classify(&json!({"notificationType": "Bounce"}).to_string(), RULES).unwrap_err();
        assert_eq!(err.to_string(), "Bounce notification has no bounce object");
        let err = classify("not json", RULES).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("Message is not an SES notification")
        );
    }
}
