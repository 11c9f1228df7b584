//! Properties of the protocol helpers over arbitrary input.

use cfn_responder::cfn::{CfnResponse, CfnStatus, MAX_RESPONSE_BYTES, fit_response, physical_id};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn response(
    reason: Option<String>,
    data: Vec<(String, String)>,
    logical: String,
    failed: bool,
) -> CfnResponse {
    let stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/app/8f1e2c40-7c1b-11ee-b962-0242ac120002";
    CfnResponse {
        status: if failed {
            CfnStatus::Failed
        } else {
            CfnStatus::Success
        },
        reason,
        physical_resource_id: physical_id::issue(stack_id, &logical, "req"),
        stack_id: stack_id.into(),
        request_id: "0b5a3c7e-2f7d-4b61-9d0a-6f1c2e3d4a5b".into(),
        logical_resource_id: logical,
        no_echo: false,
        data: data
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect::<Map<_, _>>(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_response_fits_and_says_what_it_dropped(
        reason in proptest::option::of(any::<String>().prop_map(|s| s.repeat(40))),
        data in proptest::collection::vec((".{1,20}", ".{0,400}"), 0..30),
        logical in "[A-Za-z0-9]{1,255}",
        failed in any::<bool>(),
    ) {
        let original = response(reason, data, logical, failed);
        let (body, fitted, report) = fit_response(&original, true);
        prop_assert!(body.len() <= MAX_RESPONSE_BYTES, "{} bytes", body.len());
        let parsed: CfnResponse = serde_json::from_slice(&body).unwrap();
        prop_assert_eq!(&parsed, &fitted);
        prop_assert_eq!(&parsed.physical_resource_id, &original.physical_resource_id);
        prop_assert_eq!(&parsed.request_id, &original.request_id);
        if report.data_dropped {
            prop_assert!(parsed.data.is_empty());
            prop_assert_eq!(parsed.status, CfnStatus::Failed);
            prop_assert!(parsed.reason.unwrap().contains("was dropped"));
        } else {
            prop_assert_eq!(&parsed.data, &original.data);
            prop_assert_eq!(parsed.status, original.status);
        }
    }

    #[test]
    fn issued_ids_verify_and_fit(stack in ".{0,300}", logical in ".{0,2000}", request in ".{0,100}") {
        let id = physical_id::issue(&stack, &logical, &request);
        prop_assert!(!id.is_empty() && id.len() <= 1024);
        prop_assert!(physical_id::is_issued(&id, &stack, &logical));
        prop_assert!(!physical_id::is_issued(&physical_id::for_failed_create(&stack, &logical, &request), &stack, &logical));
    }
}
