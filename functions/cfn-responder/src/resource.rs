//! The extension point: one Rust type per custom resource type.

use crate::cfn::physical_id;
use crate::cfn::props::{PropertyError, parse_properties};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Attributes returned to the template, read with `Fn::GetAtt`.
pub type Data = Map<String, Value>;

/// What a successful create, update or delete returns.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub data: Data,
    /// Masks Data in the console and `describe-stack-resources`.
    pub no_echo: bool,
}

impl Outcome {
    pub fn with_data(data: impl IntoIterator<Item = (&'static str, Value)>) -> Self {
        Self {
            data: data.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            no_echo: false,
        }
    }
}

/// Why a resource operation failed; the message becomes the FAILED Reason.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error(transparent)]
    InvalidProperty(#[from] PropertyError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Service(String),
}

/// Identifies the request and the resource it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub stack_id: String,
    pub logical_resource_id: String,
    pub request_id: String,
    pub resource_type: String,
    /// The id the resource has (update, delete) or is being given (create).
    pub physical_resource_id: String,
}

/// A custom resource type. Implement it, then register it in `main.rs`.
///
/// Operations must treat "already gone" as success on delete. A type whose
/// operations are not safe to repeat leaves `IDEMPOTENT` false: the responder
/// then runs each RequestId at most once (see `idempotency.rs`).
pub trait CustomResource: Send + Sync + 'static {
    /// The `Type` used in templates, such as `Custom::AmiLookup`.
    const RESOURCE_TYPE: &'static str;
    /// Whether create, update and delete may safely run twice.
    const IDEMPOTENT: bool = false;
    /// The typed `Properties`; parse scalars with `crate::cfn::props::lenient`.
    type Properties: DeserializeOwned + Send + Sync + 'static;

    fn create(
        &self,
        ctx: &RequestContext,
        props: &Self::Properties,
    ) -> impl Future<Output = Result<Outcome, ResourceError>> + Send;

    /// Changes the resource in place; by default, runs `create` again.
    fn update(
        &self,
        ctx: &RequestContext,
        _old: &Self::Properties,
        new: &Self::Properties,
    ) -> impl Future<Output = Result<Outcome, ResourceError>> + Send {
        self.create(ctx, new)
    }

    /// Removes the resource; by default there is nothing to remove.
    fn delete(
        &self,
        _ctx: &RequestContext,
        _props: &Self::Properties,
    ) -> impl Future<Output = Result<Outcome, ResourceError>> + Send {
        async { Ok(Outcome::default()) }
    }

    /// Whether going from `old` to `new` needs a new resource (and id); the
    /// old one then gets a Delete from CloudFormation after the update.
    fn requires_replacement(&self, _old: &Self::Properties, _new: &Self::Properties) -> bool {
        false
    }
}

/// What the responder asks a type to do, with the raw properties.
#[derive(Debug, Clone)]
pub enum Action {
    Create { props: Value },
    Update { old: Value, new: Value },
    Delete { props: Value },
}

/// The result of an action: the outcome and the id the resource now has.
#[derive(Debug, Clone, PartialEq)]
pub struct Done {
    pub outcome: Outcome,
    pub physical_resource_id: String,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Object-safe form of [`CustomResource`], so types can share one registry.
pub trait DynResource: Send + Sync {
    fn idempotent(&self) -> bool;
    fn run(
        self: Arc<Self>,
        action: Action,
        ctx: RequestContext,
    ) -> BoxFuture<Result<Done, ResourceError>>;
}

impl<T: CustomResource> DynResource for T {
    fn idempotent(&self) -> bool {
        T::IDEMPOTENT
    }

    fn run(
        self: Arc<Self>,
        action: Action,
        mut ctx: RequestContext,
    ) -> BoxFuture<Result<Done, ResourceError>> {
        Box::pin(async move {
            let outcome = match action {
                Action::Create { props } => {
                    let props = parse_properties::<T::Properties>(&props)?;
                    self.create(&ctx, &props).await?
                }
                Action::Update { old, new } => {
                    let new = parse_properties::<T::Properties>(&new)?;
                    // Old properties that no longer parse (the schema moved
                    // on) cannot be updated in place: replace.
                    match parse_properties::<T::Properties>(&old) {
                        Ok(old) if !self.requires_replacement(&old, &new) => {
                            self.update(&ctx, &old, &new).await?
                        }
                        _ => {
                            ctx.physical_resource_id = physical_id::issue(
                                &ctx.stack_id,
                                &ctx.logical_resource_id,
                                &ctx.request_id,
                            );
                            self.create(&ctx, &new).await?
                        }
                    }
                }
                Action::Delete { props } => {
                    let props = parse_properties::<T::Properties>(&props)?;
                    self.delete(&ctx, &props).await?
                }
            };
            Ok(Done {
                outcome,
                physical_resource_id: ctx.physical_resource_id,
            })
        })
    }
}

/// Resource types by their `ResourceType`.
#[derive(Default, Clone)]
pub struct Registry {
    types: BTreeMap<&'static str, Arc<dyn DynResource>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register<T: CustomResource>(mut self, resource: T) -> Self {
        self.types.insert(T::RESOURCE_TYPE, Arc::new(resource));
        self
    }

    pub fn get(&self, resource_type: &str) -> Option<Arc<dyn DynResource>> {
        self.types.get(resource_type).cloned()
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.types.keys().copied().collect()
    }
}
