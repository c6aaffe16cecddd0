//! hoist's AWS front doors.
//!
//! - [`protocol`]: what every AWS service shares on the wire — request ids
//!   (`x-amzn-RequestId`) and errors in the REST-JSON shape ([`AwsError`]: `X-Amzn-ErrorType`
//!   and a JSON body with `Type` and `message`).
//! - [`lambda`]: the AWS Lambda API — the whole control plane and the Invoke API — as one axum
//!   router over a [`hoist_store::Store`] and a [`lambda::FunctionHost`] that runs the
//!   functions.
//!
//! - [`query`]: the Query protocol (EC2, ELBv2) and JSON 1.1 (ECS): form-encoded requests,
//!   XML answers and each service's error envelope, `X-Amz-Target` and `__type`.
//! - [`compute`]: EC2 instances, ECS clusters, task definitions, tasks and services, and ELBv2
//!   target groups, as one axum router over a store and a [`hoist_core::Containerizer`].
//! - [`sigv4`]: Signature Version 4 checked on every request against configured credentials
//!   (off unless a program asks for it), refusing in each service's error shape.
//!
//! Unmodified AWS clients (boto3 and the AWS CLI are tested) talk to it with an endpoint URL
//! and any credentials, or only the configured ones when [`sigv4`] is in front.

pub mod compute;
pub mod lambda;
pub mod protocol;
pub mod query;
pub mod sigv4;

pub use protocol::{AwsError, RequestId};
