//! `Custom::AmiLookup`: the newest image matching owners, a name pattern, an
//! architecture and optional tags. Read-only, so it is idempotent and Delete
//! has nothing to do.

use crate::cfn::props::lenient;
use crate::ports::ImageCatalog;
use crate::resource::{CustomResource, Outcome, RequestContext, ResourceError};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AmiLookupProperties {
    /// Account ids or aliases (`amazon`, `self`, `aws-marketplace`).
    #[serde(deserialize_with = "lenient::string_list")]
    pub owners: Vec<String>,
    /// EC2 name filter; `*` and `?` are wildcards.
    pub name_pattern: String,
    pub architecture: Architecture,
    /// Tags the image must carry.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Architecture {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
    #[serde(rename = "i386")]
    I386,
    #[serde(rename = "x86_64_mac")]
    X86_64Mac,
    #[serde(rename = "arm64_mac")]
    Arm64Mac,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
            Self::I386 => "i386",
            Self::X86_64Mac => "x86_64_mac",
            Self::Arm64Mac => "arm64_mac",
        }
    }
}

pub struct AmiLookup<C> {
    catalog: C,
}

impl<C: ImageCatalog> AmiLookup<C> {
    pub fn new(catalog: C) -> Self {
        Self { catalog }
    }
}

impl<C: ImageCatalog> CustomResource for AmiLookup<C> {
    const RESOURCE_TYPE: &'static str = "Custom::AmiLookup";
    const IDEMPOTENT: bool = true;
    type Properties = AmiLookupProperties;

    async fn create(
        &self,
        _ctx: &RequestContext,
        props: &AmiLookupProperties,
    ) -> Result<Outcome, ResourceError> {
        let images = self
            .catalog
            .find_images(props)
            .await
            .map_err(|e| ResourceError::Service(format!("DescribeImages failed: {e}")))?;
        let newest = images
            .into_iter()
            .max_by(|a, b| {
                a.creation_date
                    .cmp(&b.creation_date)
                    .then_with(|| a.image_id.cmp(&b.image_id))
            })
            .ok_or_else(|| {
                ResourceError::NotFound(format!(
                    "no available image matches Owners={:?}, NamePattern={:?}, Architecture={}{}",
                    props.owners,
                    props.name_pattern,
                    props.architecture.as_str(),
                    if props.tags.is_empty() {
                        String::new()
                    } else {
                        format!(", Tags={:?}", props.tags)
                    }
                ))
            })?;
        Ok(Outcome::with_data([
            ("ImageId", Value::from(newest.image_id)),
            ("Name", Value::from(newest.name)),
            ("CreationDate", Value::from(newest.creation_date)),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::props::parse_properties;
    use crate::ports::ImageSummary;
    use crate::testing::InMemoryImages;
    use serde_json::json;

    fn image(id: &str, date: &str) -> ImageSummary {
        ImageSummary {
            image_id: id.into(),
            name: format!("al2023-{id}"),
            creation_date: date.into(),
        }
    }

    fn ctx() -> RequestContext {
        RequestContext {
            stack_id: "s".into(),
            logical_resource_id: "Ami".into(),
            request_id: "r".into(),
            resource_type: "Custom::AmiLookup".into(),
            physical_resource_id: "p".into(),
        }
    }

    fn props() -> AmiLookupProperties {
        parse_properties(
            &json!({"Owners": ["amazon"], "NamePattern": "al2023-ami-*", "Architecture": "arm64"}),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn picks_the_newest_match() {
        let lookup = AmiLookup::new(InMemoryImages(vec![
            image("ami-old", "2024-01-01T00:00:00.000Z"),
            image("ami-new", "2026-06-01T00:00:00.000Z"),
            image("ami-mid", "2025-01-01T00:00:00.000Z"),
        ]));
        let outcome = lookup.create(&ctx(), &props()).await.unwrap();
        assert_eq!(outcome.data["ImageId"], "ami-new");
        assert_eq!(outcome.data["CreationDate"], "2026-06-01T00:00:00.000Z");
    }

    #[tokio::test]
    async fn no_match_is_a_clear_failure() {
        let err = AmiLookup::new(InMemoryImages(vec![]))
            .create(&ctx(), &props())
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no available image matches Owners=[\"amazon\"]"),
            "{err}"
        );
    }

    #[test]
    fn architecture_garbage_names_the_field() {
        let err = parse_properties::<AmiLookupProperties>(&json!({
            "Owners": "amazon", "NamePattern": "x", "Architecture": "sparc"
        }))
        .unwrap_err();
        assert_eq!(err.field, "Architecture");
        assert!(err.reason.contains("unknown variant `sparc`"), "{err}");
    }
}
