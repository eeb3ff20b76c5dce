//! Creates the resources `template.yaml` declares in an emulator (DynamoDB Local, moto,
//! LocalStack), so that local runs and tests are wired exactly as AWS is: there is no
//! second copy of the wiring.
//!
//! Only properties that change behaviour are translated (keys, indexes, stream, TTL);
//! those that only matter in AWS (encryption, backups, tags) are skipped by name, and
//! any other property is an error, so the template cannot drift from what local runs
//! understand.

//!
//! - [`template`]: the template model: resources, tables, function mappings, HTTP
//!   routes, parameters and conditions, read without any emulator.
//! - [`messaging`]: the queues, the bus's rules and their patterns, as declared.
//! - [`create`]: resources created (or found) in the emulators from that model.
//! - [`local`]: clients for the emulators and whole local stacks.

pub mod create;
pub mod faults;
pub mod local;
pub mod messaging;
pub mod template;

pub use create::Created;
pub use template::{
    AttributeSpec, HttpRoute, IndexSpec, KeySpec, ProjectionSpec, SqsMapping, StreamSpec, TableSpec,
    Template, Throttle, TtlSpec,
};

/// Why the template could not be read or a resource not created.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The template's path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the YAML we expect.
    #[error("template: {0}")]
    Parse(String),
    /// No such resource.
    #[error("template has no {kind} named {logical_id}")]
    NoSuchResource {
        /// The resource type looked for.
        kind: &'static str,
        /// The logical id.
        logical_id: String,
    },
    /// A property local runs do not understand.
    #[error("{logical_id}: property {property} is not supported locally")]
    Unsupported {
        /// The resource.
        logical_id: String,
        /// The property.
        property: String,
    },
    /// The emulator refused.
    #[error("creating {what} failed")]
    Emulator {
        /// What was being created.
        what: String,
        /// The SDK's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub(crate) fn emulator(what: &str, source: impl std::error::Error + Send + Sync + 'static) -> ProvisionError {
    ProvisionError::Emulator {
        what: what.to_owned(),
        source: Box::new(source),
    }
}
