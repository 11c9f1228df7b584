//! The EC2 adapter: images for `Custom::AmiLookup`.

use crate::ports::{CatalogError, ImageCatalog, ImageSummary};
use crate::resources::ami_lookup::AmiLookupProperties;

/// The EC2 adapter.
pub struct Ec2Images(pub aws_sdk_ec2::Client);

impl ImageCatalog for Ec2Images {
    async fn find_images(
        &self,
        query: &AmiLookupProperties,
    ) -> Result<Vec<ImageSummary>, CatalogError> {
        use aws_sdk_ec2::types::Filter;
        let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
        let mut request = self
            .0
            .describe_images()
            .set_owners(Some(query.owners.clone()))
            .filters(filter("name", &query.name_pattern))
            .filters(filter("architecture", query.architecture.as_str()))
            .filters(filter("state", "available"));
        for (key, value) in &query.tags {
            request = request.filters(filter(&format!("tag:{key}"), value));
        }
        let mut pages = request.into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| CatalogError::Call(shared::aws::error_text(&e)))?;
            found.extend(page.images().iter().filter_map(|image| {
                Some(ImageSummary {
                    image_id: image.image_id()?.to_owned(),
                    name: image.name().unwrap_or_default().to_owned(),
                    creation_date: image.creation_date().unwrap_or_default().to_owned(),
                })
            }));
        }
        Ok(found)
    }
}
