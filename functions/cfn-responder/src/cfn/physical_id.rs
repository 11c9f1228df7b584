//! Physical resource ids that the responder can recognise as its own without
//! keeping state.
//!
//! An issued id is `<stack-name>-<logical-id>-<nonce><check>`: the nonce comes
//! from the Create's RequestId (deterministic, so a retried Create issues the
//! same id), the check binds it to the stack and logical id. A Delete whose id
//! does not verify was never issued here (a failed Create, or the rollback of
//! a Create still in flight) and must succeed without touching anything.

use sha2::{Digest, Sha256};

const MAX_ID_BYTES: usize = 1024;
const HEX_LEN: usize = 8;

fn hex_prefix(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hasher
        .finalize()
        .iter()
        .take(HEX_LEN / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `arn:aws:cloudformation:region:acct:stack/NAME/guid` -> `NAME`.
fn stack_name(stack_id: &str) -> &str {
    stack_id.split('/').nth(1).unwrap_or(stack_id)
}

fn check(stack_id: &str, logical_id: &str, nonce: &str) -> String {
    hex_prefix(&["cfn-responder/v1", stack_id, logical_id, nonce])
}

fn readable_prefix(stack_id: &str, logical_id: &str) -> String {
    let mut prefix = format!("{}-{}", stack_name(stack_id), logical_id);
    // Stack names and logical ids are far shorter than this in practice.
    let budget = MAX_ID_BYTES - 2 * HEX_LEN - 32;
    if prefix.len() > budget {
        let mut cut = budget;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    prefix
}

/// The id issued for a resource created by the request `request_id`.
pub fn issue(stack_id: &str, logical_id: &str, request_id: &str) -> String {
    let nonce = hex_prefix(&[request_id]);
    let check = check(stack_id, logical_id, &nonce);
    format!("{}-{nonce}{check}", readable_prefix(stack_id, logical_id))
}

/// The id reported with a FAILED Create: it never verifies, so the Delete
/// CloudFormation sends during rollback is a no-op.
pub fn for_failed_create(stack_id: &str, logical_id: &str, request_id: &str) -> String {
    format!(
        "{}-create-failed-{}",
        readable_prefix(stack_id, logical_id),
        hex_prefix(&[request_id])
    )
}

/// Whether `physical_id` was issued by [`issue`] for this stack and logical id.
pub fn is_issued(physical_id: &str, stack_id: &str, logical_id: &str) -> bool {
    let Some((_, suffix)) = physical_id.rsplit_once('-') else {
        return false;
    };
    if suffix.len() != 2 * HEX_LEN || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let (nonce, got) = suffix.split_at(HEX_LEN);
    check(stack_id, logical_id, nonce) == got
        && physical_id
            .strip_suffix(suffix)
            .and_then(|p| p.strip_suffix('-'))
            == Some(readable_prefix(stack_id, logical_id).as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/app/2f1c-11ee";

    #[test]
    fn issued_ids_are_deterministic_readable_and_verify() {
        let id = issue(STACK, "Ami", "req-1");
        assert_eq!(id, issue(STACK, "Ami", "req-1"));
        assert_ne!(id, issue(STACK, "Ami", "req-2"));
        assert!(id.starts_with("app-Ami-"), "{id}");
        assert!(is_issued(&id, STACK, "Ami"));
    }

    #[test]
    fn foreign_ids_do_not_verify() {
        let id = issue(STACK, "Ami", "req-1");
        assert!(!is_issued(&id, STACK, "Other"));
        assert!(!is_issued(
            &id,
            "arn:aws:cloudformation:us-east-1:1:stack/app/other",
            "Ami"
        ));
        assert!(!is_issued(
            &for_failed_create(STACK, "Ami", "req-1"),
            STACK,
            "Ami"
        ));
        assert!(!is_issued(
            "2026/11/21/[$LATEST]abcdef0123456789",
            STACK,
            "Ami"
        ));
        assert!(!is_issued("", STACK, "Ami"));
        let mut tampered = id.clone();
        tampered.replace_range(id.len() - 1.., if id.ends_with('0') { "1" } else { "0" });
        assert!(!is_issued(&tampered, STACK, "Ami"));
    }

    #[test]
    fn ids_stay_within_one_kilobyte() {
        let long_logical = "L".repeat(5000);
        let id = issue(STACK, &long_logical, "r");
        assert!(id.len() <= MAX_ID_BYTES);
        assert!(is_issued(&id, STACK, &long_logical));
    }
}
