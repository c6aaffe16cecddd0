//! What a function receives: the [`Event`] and the [`Context`].

use std::time::Duration;

use axum::http::request::Parts;
use bytes::Bytes;
use serde_json::{Value, json};

/// The request body: parsed JSON for `application/json`, raw bytes otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// A JSON body.
    Json(Value),
    /// Any other body.
    Raw(Bytes),
}

impl EventData {
    /// The data as JSON: a JSON body as is, a raw body as a string (lossy UTF-8).
    pub fn to_json(&self) -> Value {
        match self {
            EventData::Json(value) => value.clone(),
            EventData::Raw(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        }
    }
}

/// The request's extensions: the request itself (method, URI, headers).
#[derive(Debug, Clone)]
pub struct Extensions {
    /// The HTTP request's head.
    pub request: Parts,
}

/// An event, as the contract gives it to a function.
#[derive(Debug, Clone)]
pub struct Event {
    /// The body.
    pub data: EventData,
    /// The `event-id` header.
    pub event_id: Option<String>,
    /// The `event-type` header.
    pub event_type: Option<String>,
    /// The `event-time` header.
    pub event_time: Option<String>,
    /// The `event-namespace` header.
    pub event_namespace: Option<String>,
    /// The request.
    pub extensions: Extensions,
}

impl Event {
    /// The event as the other runtimes show it: `data`, `event-id`, `event-type`,
    /// `event-time`, `event-namespace` (absent headers are `null`).
    pub fn to_json(&self) -> Value {
        json!({
            "data": self.data.to_json(),
            "event-id": self.event_id,
            "event-type": self.event_type,
            "event-time": self.event_time,
            "event-namespace": self.event_namespace,
        })
    }
}

/// What the function knows about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The function's name.
    pub function_name: String,
    /// The call timeout.
    pub timeout: Duration,
    /// The runtime name.
    pub runtime: String,
    /// The memory limit, as configured (empty when none).
    pub memory_limit: String,
}
