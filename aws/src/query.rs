//! The AWS Query protocol (EC2 and ELBv2) and JSON 1.1 (ECS): form-encoded `Action`/`Version`
//! requests answered in XML, and `X-Amz-Target` requests answered in JSON, each with its
//! service's error envelope.
//!
//! What botocore writes and reads (botocore `serialize.py`, `parsers.py`):
//! - A Query request is a form body: `Action=RunInstances&Version=2016-11-15&...`. Lists are
//!   `Name.1`, `Name.2` (EC2 flattens them under each member's `locationName`, capitalised)
//!   or `Name.member.1` (the other Query services); structures are `Name.1.Member`.
//! - EC2 answers `<ActionResponse xmlns=...><requestId>..</requestId>...` with no result
//!   wrapper, and fails with `<Response><Errors><Error><Code>..</Code><Message>..</Message>
//!   </Error></Errors><RequestID>..</RequestID></Response>` (`EC2QueryParser`).
//! - The other Query services answer `<ActionResponse><ActionResult>...</ActionResult>
//!   <ResponseMetadata><RequestId>..` and fail with `<ErrorResponse><Error><Type>Sender</Type>
//!   <Code>..</Code><Message>..</Message></Error><RequestId>..</RequestId></ErrorResponse>`
//!   (`QueryParser`).
//! - JSON 1.1 names the operation in `X-Amz-Target: Prefix.Operation`, answers with
//!   `application/x-amz-json-1.1`, and fails with a JSON body whose `__type` is the code
//!   (`BaseJSONParser._do_error_parse`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::protocol::{AwsError, Fault, RequestId, query_pairs};

/// The decoded parameters of a Query request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses a form-encoded body (`application/x-www-form-urlencoded`).
    pub fn parse(body: &[u8]) -> Params {
        let text = String::from_utf8_lossy(body);
        Params(query_pairs(Some(&text)).into_iter().collect())
    }

    /// The parameter `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The parameter `key`, or `MissingParameter` naming it.
    pub fn required(&self, key: &str) -> Result<&str, AwsError> {
        self.get(key).filter(|v| !v.is_empty()).ok_or_else(|| {
            AwsError::new(
                "MissingParameter",
                StatusCode::BAD_REQUEST,
                format!("The request must contain the parameter {key}"),
            )
        })
    }

    /// The whole-number parameter `key`, if given; `InvalidParameterValue` if it is not one.
    pub fn int(&self, key: &str) -> Result<Option<i64>, AwsError> {
        self.get(key)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    invalid_value(format!(
                        "Value ({v}) for parameter {key} is invalid. Expected a whole number."
                    ))
                })
            })
            .transpose()
    }

    /// The boolean parameter `key` (`true`/`false`), if given.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, AwsError> {
        self.get(key)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid_value(format!(
                    "Value ({v}) for parameter {key} is invalid. Expected true or false."
                ))),
            })
            .transpose()
    }

    /// The indices `n` for which some `prefix.n` or `prefix.n.*` is given, in order.
    fn indices(&self, prefix: &str) -> Vec<u32> {
        let dotted = format!("{prefix}.");
        let mut found: Vec<u32> = self
            .0
            .range(dotted.clone()..)
            .take_while(|(k, _)| k.starts_with(&dotted))
            .filter_map(|(k, _)| k[dotted.len()..].split('.').next()?.parse().ok())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// The list `prefix.1`, `prefix.2`, ... (pass `Name.member` for non-EC2 services).
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.indices(prefix)
            .into_iter()
            .filter_map(|n| self.get(&format!("{prefix}.{n}")).map(str::to_owned))
            .collect()
    }

    /// The list of structures `prefix.N.*`, each as its own parameters (`Member`, `Sub.1`...).
    pub fn structs(&self, prefix: &str) -> Vec<Params> {
        self.indices(prefix)
            .into_iter()
            .map(|n| {
                let head = format!("{prefix}.{n}.");
                Params(
                    self.0
                        .range(head.clone()..)
                        .take_while(|(k, _)| k.starts_with(&head))
                        .map(|(k, v)| (k[head.len()..].to_owned(), v.clone()))
                        .collect(),
                )
            })
            .collect()
    }
}

/// `InvalidParameterValue` (400) with `message`.
pub fn invalid_value(message: impl Into<String>) -> AwsError {
    AwsError::new("InvalidParameterValue", StatusCode::BAD_REQUEST, message)
}

/// An XML document under construction; text and attribute values are escaped.
#[derive(Debug, Default)]
pub struct Xml(String);

impl Xml {
    /// An element holding what `body` writes.
    pub fn node(&mut self, tag: &str, body: impl FnOnce(&mut Xml)) -> &mut Self {
        let _ = write!(self.0, "<{tag}>");
        body(self);
        let _ = write!(self.0, "</{tag}>");
        self
    }

    /// An element holding `text`.
    pub fn text(&mut self, tag: &str, text: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.0, "<{tag}>{}</{tag}>", escape(&text.to_string()));
        self
    }

    /// An element holding `text`, when there is one.
    pub fn opt(&mut self, tag: &str, text: Option<impl std::fmt::Display>) -> &mut Self {
        if let Some(text) = text {
            self.text(tag, text);
        }
        self
    }

    /// A list: `tag` holding one `item` element per entry, each written by `body`.
    pub fn list<T>(
        &mut self,
        tag: &str,
        item: &str,
        entries: impl IntoIterator<Item = T>,
        mut body: impl FnMut(&mut Xml, T),
    ) -> &mut Self {
        self.node(tag, |x| {
            for entry in entries {
                x.node(item, |x| body(x, entry));
            }
        })
    }

    /// The document so far.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// `text` with XML's five special characters escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

/// A Query service's flavour: EC2's, or the one every other Query service shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// EC2: no result wrapper, `requestId` first, errors in `<Response><Errors>`.
    Ec2,
    /// The others (ELBv2): `<ActionResult>`, `ResponseMetadata`, errors in `<ErrorResponse>`.
    Query,
}

/// A Query service: its dialect and XML namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryService {
    /// Its dialect.
    pub dialect: Dialect,
    /// Its namespace (`http://ec2.amazonaws.com/doc/2016-11-15/`).
    pub xmlns: &'static str,
}

impl QueryService {
    /// The answer to `action`, its result written by `body`.
    pub fn respond(&self, action: &str, id: &RequestId, body: impl FnOnce(&mut Xml)) -> Response {
        let mut x = Xml::default();
        let _ = write!(x.0, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        let _ = write!(x.0, "<{action}Response xmlns=\"{}\">", self.xmlns);
        match self.dialect {
            Dialect::Ec2 => {
                x.text("requestId", &id.0);
                body(&mut x);
            }
            Dialect::Query => {
                x.node(&format!("{action}Result"), body);
                x.node("ResponseMetadata", |x| {
                    x.text("RequestId", &id.0);
                });
            }
        }
        let _ = write!(x.0, "</{action}Response>");
        xml_response(StatusCode::OK, x.0)
    }

    /// `error` in this service's envelope.
    pub fn error(&self, error: &AwsError, id: &RequestId) -> Response {
        let mut x = Xml::default();
        let _ = write!(x.0, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        match self.dialect {
            Dialect::Ec2 => {
                x.node("Response", |x| {
                    x.node("Errors", |x| {
                        x.node("Error", |x| {
                            x.text("Code", error.code())
                                .text("Message", error.message());
                        });
                    })
                    .text("RequestID", &id.0);
                });
            }
            Dialect::Query => {
                let _ = write!(x.0, "<ErrorResponse xmlns=\"{}\">", self.xmlns);
                x.node("Error", |x| {
                    let kind = match error.fault() {
                        Fault::User => "Sender",
                        Fault::Service => "Receiver",
                    };
                    x.text("Type", kind)
                        .text("Code", error.code())
                        .text("Message", error.message());
                })
                .text("RequestId", &id.0);
                let _ = write!(x.0, "</ErrorResponse>");
            }
        }
        xml_response(error.status(), x.0)
    }
}

/// EC2 (`Version=2016-11-15`).
pub const EC2: QueryService = QueryService {
    dialect: Dialect::Ec2,
    xmlns: "http://ec2.amazonaws.com/doc/2016-11-15/",
};

/// Elastic Load Balancing v2 (`Version=2015-12-01`).
pub const ELBV2: QueryService = QueryService {
    dialect: Dialect::Query,
    xmlns: "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
};

/// The content type of JSON 1.1 answers.
pub const JSON_11: &str = "application/x-amz-json-1.1";

/// A JSON 1.1 answer.
pub fn json11_response(body: &Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_11));
    response
}

/// `error` as JSON 1.1 writes it: `{"__type": code, "message": ...}`.
pub fn json11_error(error: &AwsError) -> Response {
    let body = json!({"__type": error.code(), "message": error.message()});
    let mut response = (error.status(), body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_11));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_lists_and_structures_decode_in_index_order() {
        let p = Params::parse(
            b"Action=DescribeInstances&InstanceId.2=i-b&InstanceId.1=i-a&InstanceId.10=i-c\
              &Filter.1.Name=tag%3AName&Filter.1.Value.1=web&Filter.1.Value.2=db\
              &Filter.2.Name=instance-state-name&Filter.2.Value.1=running",
        );
        assert_eq!(p.list("InstanceId"), ["i-a", "i-b", "i-c"]);
        let filters = p.structs("Filter");
        assert_eq!(filters.len(), 2);
        assert_eq!(filters[0].get("Name"), Some("tag:Name"));
        assert_eq!(filters[0].list("Value"), ["web", "db"]);
        assert_eq!(filters[1].list("Value"), ["running"]);
        assert_eq!(p.required("Nope").unwrap_err().code(), "MissingParameter");
        let q = Params::parse(b"Targets.member.1.Id=10.0.0.1&Targets.member.1.Port=80&Count=x");
        assert_eq!(q.structs("Targets.member")[0].get("Port"), Some("80"));
        assert_eq!(q.int("Count").unwrap_err().code(), "InvalidParameterValue");
    }

    #[test]
    fn envelopes_follow_each_dialect() {
        let id = RequestId("req-1".into());
        let err = AwsError::new("InvalidInstanceID.NotFound", StatusCode::BAD_REQUEST, "a<b");
        let body = |r: Response| async move {
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
                .await
                .unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ec2 = rt.block_on(body(EC2.error(&err, &id)));
        assert!(
            ec2.ends_with("<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code><Message>a&lt;b</Message></Error></Errors><RequestID>req-1</RequestID></Response>"),
            "{ec2}"
        );
        let elb = rt.block_on(body(ELBV2.error(&err, &id)));
        assert!(elb.contains("<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Sender</Type><Code>"), "{elb}");
        let ok = rt.block_on(body(ELBV2.respond("DeleteTargetGroup", &id, |_| {})));
        assert!(ok.contains("<DeleteTargetGroupResult></DeleteTargetGroupResult><ResponseMetadata><RequestId>req-1</RequestId>"), "{ok}");
        let ok = rt.block_on(body(EC2.respond("StopInstances", &id, |x| {
            x.list("instancesSet", "item", ["i-1"], |x, i| {
                x.text("instanceId", i);
            });
        })));
        assert!(ok.contains("<requestId>req-1</requestId><instancesSet><item><instanceId>i-1</instanceId></item></instancesSet>"), "{ok}");
        let json = rt.block_on(body(json11_error(&err)));
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            json!({"__type": "InvalidInstanceID.NotFound", "message": "a<b"})
        );
    }
}
