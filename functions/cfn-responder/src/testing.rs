//! In-memory doubles of the ports for the unit tests (`cfg(test)`), named
//! `InMemory*` as in the other function crates. The production fallbacks
//! that also live in memory (`LocalStore`, `LocalOwners`) are in
//! `fallback.rs`, because a deployed function runs them.

use crate::ports::{CatalogError, IdentitySettings, ImageCatalog, ImageSummary, SesError};
use crate::resources::ami_lookup::AmiLookupProperties;
use crate::resources::ses_identity_notifications::{Kind, NotificationState};
use std::sync::Mutex;

/// An EC2 image catalog that answers every query with the same images.
pub struct InMemoryImages(pub Vec<ImageSummary>);

impl ImageCatalog for InMemoryImages {
    async fn find_images(
        &self,
        _: &AmiLookupProperties,
    ) -> Result<Vec<ImageSummary>, CatalogError> {
        Ok(self.0.clone())
    }
}

/// One identity, `example.org`, whose state the calls change; each call
/// is recorded.
pub struct InMemoryIdentities {
    pub calls: Mutex<Vec<String>>,
    pub state: Mutex<NotificationState>,
}

impl Default for InMemoryIdentities {
    fn default() -> Self {
        Self {
            calls: Mutex::default(),
            state: Mutex::new(NotificationState {
                forwarding_enabled: true,
                ..NotificationState::default()
            }),
        }
    }
}

impl IdentitySettings for InMemoryIdentities {
    async fn notification_state(
        &self,
        identity: &str,
    ) -> Result<Option<NotificationState>, SesError> {
        self.calls.lock().unwrap().push(format!("get {identity}"));
        Ok(Some(self.state.lock().unwrap().clone()))
    }
    async fn set_topic(
        &self,
        identity: &str,
        kind: Kind,
        topic: Option<&str>,
    ) -> Result<(), SesError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("topic {identity} {} {topic:?}", kind.as_str()));
        let mut state = self.state.lock().unwrap();
        let slot = match kind {
            Kind::Bounce => &mut state.bounce_topic,
            Kind::Complaint => &mut state.complaint_topic,
            Kind::Delivery => &mut state.delivery_topic,
        };
        *slot = topic.map(str::to_owned);
        Ok(())
    }
    async fn set_headers(&self, identity: &str, kind: Kind, enabled: bool) -> Result<(), SesError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("headers {identity} {} {enabled}", kind.as_str()));
        Ok(())
    }
    async fn set_forwarding(&self, identity: &str, enabled: bool) -> Result<(), SesError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("forwarding {identity} {enabled}"));
        self.state.lock().unwrap().forwarding_enabled = enabled;
        Ok(())
    }
}
