//! Arbitrary input never panics, and fields SES may add are ignored.

use lambda_runtime::{Context, LambdaEvent};
use proptest::prelude::*;
use serde_json::{Value, json};
use ses_bounce_handler::fallback::{Disabled, SystemClock};
use ses_bounce_handler::handler::handle;
use ses_bounce_handler::notification::{Rules, classify};
use ses_bounce_handler::processor::{Processor, Settings};
use ses_bounce_handler::testing::InMemorySuppressions;

const RULES: Rules = Rules {
    transient_5xx_is_permanent: true,
    reset_soft_on_delivery: true,
};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            ".{0,12}",
            Just("Bounce".to_owned()),
            Just("Complaint".to_owned()),
            Just("Delivery".to_owned()),
            Just("Permanent".to_owned()),
            Just("Transient".to_owned()),
            Just("a@b.c".to_owned()),
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::hash_map(
                prop_oneof![
                    ".{0,6}",
                    Just("notificationType".to_owned()),
                    Just("eventType".to_owned()),
                    Just("bounce".to_owned()),
                    Just("complaint".to_owned()),
                    Just("delivery".to_owned()),
                    Just("bouncedRecipients".to_owned()),
                    Just("feedbackId".to_owned()),
                    Just("bounceType".to_owned()),
                    Just("emailAddress".to_owned()),
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn processor() -> Processor<InMemorySuppressions, Disabled, SystemClock> {
    Processor::new(
        InMemorySuppressions::default(),
        Disabled,
        SystemClock,
        Settings::default(),
    )
}

fn bounce() -> Value {
    json!({"notificationType": "Bounce", "mail": {"messageId": "m-1", "destination": ["a@example.com"]},
           "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "f-1",
                      "bouncedRecipients": [{"emailAddress": "a@example.com", "status": "5.1.1"}]}})
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = classify(&text, RULES);
    }

    #[test]
    fn arbitrary_json_messages_never_panic(message in json_value()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let text = message.to_string();
        let _ = classify(&text, RULES);
        let event = json!({"Records": [{"Sns": {"Message": text}}, {"eventSource": "aws:sqs", "messageId": "1", "body": message.to_string()}]});
        let p = processor();
        let _ = runtime.block_on(handle(&p, LambdaEvent::new(event, Context::default())));
        let _ = runtime.block_on(handle(&p, LambdaEvent::new(message, Context::default())));
    }

    #[test]
    fn unknown_fields_are_ignored(extra in proptest::collection::vec(("[a-z]{1,8}", json_value()), 1..5),
                                  at in 0usize..3) {
        let expected = classify(&bounce().to_string(), RULES).unwrap();
        let mut message = bounce();
        for (name, value) in extra {
            let target = match at {
                0 => &mut message,
                1 => &mut message["bounce"],
                _ => &mut message["bounce"]["bouncedRecipients"][0],
            };
            let known = ["notificationType", "eventType", "mail", "bounce", "complaint", "delivery"];
            if !known.contains(&name.as_str()) && target.get(&name).is_none() {
                target[name.as_str()] = value;
            }
        }
        prop_assert_eq!(classify(&message.to_string(), RULES).unwrap(), expected);
    }
}
