//! `orderflow-dev`, the developer's tools: the whole system on a laptop and what
//! measures it. Nothing here ships to an operator; the operator's commands are
//! `orderflow`'s ([`orderflow_cli`]), and these tools use them (the checker, the DLQs,
//! the local stack's keys), never the other way round.
//!
//! - [`dev`]: `orderflow-dev up`, the whole system on a laptop, behind
//!   [`authorizer`] (API Gateway's JWT authorizer, locally) and with [`ops`], its
//!   operations page.
//! - [`load`]: `orderflow-dev load`, orders through the API and what they cost and
//!   took; [`ceiling`]: what the emulators can serve of the same call mix.
//! - [`capacity`]: `orderflow-dev capacity`, what N orders/s needs and costs on AWS.
//! - [`footprint`]: `orderflow-dev footprint`, each function's binary size and init
//!   time beside a hello-world function's.

pub mod authorizer;
pub mod capacity;
pub mod ceiling;
pub mod dev;
pub mod footprint;
pub mod load;
pub mod ops;
