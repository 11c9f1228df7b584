//! The fleet through the EC2 API.

use crate::config::{LaunchSettings, TemplateRef};
use crate::job::TAG_JOB_ID;
use crate::ports::{Fleet, FleetError, LaunchRequest};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{
    Filter, InstanceInterruptionBehavior, InstanceMarketOptionsRequest, InstanceType,
    LaunchTemplateSpecification, MarketType, ResourceType, ShutdownBehavior, SpotInstanceType,
    SpotMarketOptions, Tag, TagSpecification,
};
use aws_smithy_types::base64;
use std::collections::HashMap;

pub struct Ec2Fleet {
    client: Client,
    launch: LaunchSettings,
}

impl Ec2Fleet {
    pub fn new(client: Client, launch: LaunchSettings) -> Self {
        Self { client, launch }
    }

    /// The id of the first instance the filters match.
    async fn first_instance(&self, filters: Vec<Filter>) -> Result<Option<String>, FleetError> {
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(error)?;
            if let Some(instance) = page
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .next()
            {
                return Ok(instance.instance_id().map(str::to_owned));
            }
        }
        Ok(None)
    }
}

fn error<E: std::error::Error + 'static>(e: E) -> FleetError {
    FleetError::Call(shared::aws::error_text(&e))
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
}

const LIVE: &[&str] = &["pending", "running"];

impl Fleet for Ec2Fleet {
    async fn live_instance(&self, job_id: &str) -> Result<Option<String>, FleetError> {
        let filters = vec![
            filter(&format!("tag:{TAG_JOB_ID}"), &[job_id]),
            filter("instance-state-name", LIVE),
        ];
        self.first_instance(filters).await
    }

    async fn instance_states(
        &self,
        instance_ids: &[String],
    ) -> Result<HashMap<String, String>, FleetError> {
        let mut states = HashMap::new();
        // A filter, not InstanceIds: an id EC2 no longer (or not yet) lists
        // is simply absent instead of failing the whole call.
        for ids in instance_ids.chunks(200) {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut pages = self
                .client
                .describe_instances()
                .filters(filter("instance-id", &ids))
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(error)?;
                for instance in page.reservations().iter().flat_map(|r| r.instances()) {
                    if let (Some(id), Some(state)) = (
                        instance.instance_id(),
                        instance.state().and_then(|s| s.name()),
                    ) {
                        states.insert(id.to_owned(), state.as_str().to_owned());
                    }
                }
            }
        }
        Ok(states)
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<String, FleetError> {
        let template = match &self.launch.template {
            TemplateRef::Id(id) => LaunchTemplateSpecification::builder().launch_template_id(id),
            TemplateRef::Name(name) => {
                LaunchTemplateSpecification::builder().launch_template_name(name)
            }
        }
        .version(&self.launch.version)
        .build();
        let tags: Vec<Tag> = request
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let tagged = |kind| {
            TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let spot = self.launch.spot.then(|| {
            InstanceMarketOptionsRequest::builder()
                .market_type(MarketType::Spot)
                .spot_options(
                    SpotMarketOptions::builder()
                        .spot_instance_type(SpotInstanceType::OneTime)
                        .instance_interruption_behavior(InstanceInterruptionBehavior::Terminate)
                        .build(),
                )
                .build()
        });
        let output = self
            .client
            .run_instances()
            .launch_template(template)
            .min_count(1)
            .max_count(1)
            .client_token(&request.client_token)
            .user_data(base64::encode(&request.user_data))
            .instance_initiated_shutdown_behavior(ShutdownBehavior::Terminate)
            .set_instance_type(self.launch.instance_type.as_deref().map(InstanceType::from))
            .set_instance_market_options(spot)
            .tag_specifications(tagged(ResourceType::Instance))
            .tag_specifications(tagged(ResourceType::Volume))
            .send()
            .await
            .map_err(error)?;
        output
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .map(str::to_owned)
            .ok_or(FleetError::NoInstance)
    }
}
