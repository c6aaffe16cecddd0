//! The JSON the crate emits and accepts, checked against the real Mesos v1 protobuf
//! definitions: every field name must exist in its message, every enum value in its enum, and
//! every `bytes` field must be base64.
//!
//! The definitions are read where Debian's `golang-github-mesos-mesos-go-dev` installs them
//! (`/usr/share/gocode/src/github.com/mesos/mesos-go/api/v1/lib`), or from the directory in
//! `HOIST_MESOS_PROTO_DIR` (holding `mesos.proto` and `executor/executor.proto`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use hoist_mesos::wire::*;
use serde::Serialize;
use serde_json::Value;

const DEBIAN_DIR: &str = "/usr/share/gocode/src/github.com/mesos/mesos-go/api/v1/lib";

/// Enum values newer than the installed definitions (which are from Mesos 1.4): HEARTBEAT
/// calls and events were added to the executor API later. They are the only exceptions.
const NEWER_THAN_INSTALLED: &[(&str, &str)] = &[
    ("mesos.executor.Call.Type", "HEARTBEAT"),
    ("mesos.executor.Event.Type", "HEARTBEAT"),
];

#[derive(Debug)]
struct Field {
    name: String,
    kind: String,
    repeated: bool,
}

#[derive(Debug, Default)]
struct Schema {
    messages: HashMap<String, Vec<Field>>,
    enums: HashMap<String, HashSet<String>>,
}

fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
        } else if rest.starts_with('"') {
            let end = rest[1..].find('"').map_or(rest.len(), |i| i + 2);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut word = String::new();
    for c in strip_comments(text).chars() {
        if c.is_alphanumeric() || c == '_' || c == '.' || c == '"' || c == '-' {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
        }
    }
    out
}

/// A reader of the proto2 subset these files use: packages, nested messages and enums, and
/// fields with options.
fn parse(text: &str, schema: &mut Schema) {
    let toks = tokens(text);
    let mut package = String::new();
    let mut scopes: Vec<(String, bool)> = vec![]; // (full name, is enum)
    let mut i = 0;
    let full = |scopes: &[(String, bool)], package: &str, name: &str| match scopes.last() {
        Some((s, _)) => format!("{s}.{name}"),
        None => format!("{package}.{name}"),
    };
    let skip_statement = |i: &mut usize| {
        let mut depth = 0;
        while *i < toks.len() {
            match toks[*i].as_str() {
                "[" | "(" => depth += 1,
                "]" | ")" => depth -= 1,
                ";" if depth == 0 => {
                    *i += 1;
                    return;
                }
                _ => {}
            }
            *i += 1;
        }
    };
    while i < toks.len() {
        let t = toks[i].as_str();
        match t {
            "package" => {
                package = toks[i + 1].clone();
                i += 3;
            }
            "syntax" | "import" | "option" | "reserved" | "extensions" => skip_statement(&mut i),
            "message" | "enum" => {
                let name = full(&scopes, &package, &toks[i + 1]);
                if t == "enum" {
                    schema.enums.entry(name.clone()).or_default();
                } else {
                    schema.messages.entry(name.clone()).or_default();
                }
                scopes.push((name, t == "enum"));
                i += 3; // name, `{`
            }
            "}" => {
                scopes.pop();
                i += 1;
            }
            ";" => i += 1,
            _ => {
                let Some((scope, is_enum)) = scopes.last().cloned() else {
                    skip_statement(&mut i);
                    continue;
                };
                if is_enum {
                    schema.enums.get_mut(&scope).unwrap().insert(t.to_owned());
                    skip_statement(&mut i);
                } else if matches!(t, "optional" | "required" | "repeated") {
                    let field = Field {
                        kind: toks[i + 1].clone(),
                        name: toks[i + 2].clone(),
                        repeated: t == "repeated",
                    };
                    schema.messages.get_mut(&scope).unwrap().push(field);
                    skip_statement(&mut i);
                } else {
                    skip_statement(&mut i);
                }
            }
        }
    }
}

fn schema() -> Schema {
    let dir = std::env::var_os("HOIST_MESOS_PROTO_DIR")
        .map_or_else(|| PathBuf::from(DEBIAN_DIR), PathBuf::from);
    let mut schema = Schema::default();
    for file in ["mesos.proto", "executor/executor.proto"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {}: {e}. Install Debian's golang-github-mesos-mesos-go-dev, or point \
                 HOIST_MESOS_PROTO_DIR at a directory holding mesos.proto and executor/executor.proto",
                path.display()
            )
        });
        parse(&text, &mut schema);
    }
    assert!(
        schema.messages.contains_key("mesos.TaskInfo")
            && schema.messages.contains_key("mesos.executor.Call")
    );
    schema
}

impl Schema {
    /// Resolves a type named inside `scope` the way protoc does: innermost scope first.
    fn resolve(&self, scope: &str, kind: &str) -> Option<String> {
        let mut scope = scope.to_owned();
        loop {
            let candidate = if scope.is_empty() {
                kind.to_owned()
            } else {
                format!("{scope}.{kind}")
            };
            if self.messages.contains_key(&candidate) || self.enums.contains_key(&candidate) {
                return Some(candidate);
            }
            if scope.is_empty() {
                return None;
            }
            scope = scope
                .rsplit_once('.')
                .map_or(String::new(), |(s, _)| s.to_owned());
        }
    }

    fn enum_has(&self, name: &str, value: &str) -> bool {
        self.enums.get(name).is_some_and(|v| v.contains(value))
            || NEWER_THAN_INSTALLED.contains(&(name, value))
    }

    /// Checks `value` as JSON of message `message`; problems are pushed with their path.
    fn check(&self, value: &Value, message: &str, path: &str, problems: &mut Vec<String>) {
        let Some(fields) = self.messages.get(message) else {
            problems.push(format!("{path}: no message {message}"));
            return;
        };
        let Some(object) = value.as_object() else {
            problems.push(format!(
                "{path}: {message} must be a JSON object, got {value}"
            ));
            return;
        };
        for (key, v) in object {
            let at = format!("{path}.{key}");
            let Some(field) = fields.iter().find(|f| &f.name == key) else {
                problems.push(format!("{at}: {message} has no field `{key}`"));
                continue;
            };
            let items: Vec<&Value> = match (field.repeated, v) {
                (true, Value::Array(items)) => items.iter().collect(),
                (true, other) => {
                    problems.push(format!(
                        "{at}: repeated field must be an array, got {other}"
                    ));
                    continue;
                }
                (false, v) => vec![v],
            };
            for item in items {
                self.check_value(item, message, &field.kind, &at, problems);
            }
        }
    }

    fn check_value(
        &self,
        v: &Value,
        scope: &str,
        kind: &str,
        at: &str,
        problems: &mut Vec<String>,
    ) {
        let ok = match kind {
            "string" => v.is_string(),
            "bool" => v.is_boolean(),
            "double" | "float" => v.is_number(),
            "int32" | "uint32" | "sint32" | "fixed32" => v.is_i64() || v.is_u64(),
            "int64" | "uint64" | "sint64" | "fixed64" => v.is_i64() || v.is_u64() || v.is_string(),
            "bytes" => v
                .as_str()
                .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok()),
            _ => {
                let Some(resolved) = self.resolve(scope, kind) else {
                    problems.push(format!("{at}: cannot resolve type {kind} in {scope}"));
                    return;
                };
                if self.enums.contains_key(&resolved) {
                    match v.as_str() {
                        Some(name) if self.enum_has(&resolved, name) => {}
                        _ => problems.push(format!("{at}: {v} is not a value of {resolved}")),
                    }
                } else {
                    self.check(v, &resolved, at, problems);
                }
                return;
            }
        };
        if !ok {
            problems.push(format!("{at}: {v} is not a valid {kind}"));
        }
    }
}

fn json<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn assert_conforms(schema: &Schema, value: Value, message: &str) {
    let mut problems = vec![];
    schema.check(&value, message, message, &mut problems);
    assert!(
        problems.is_empty(),
        "{message} does not match the protobuf definitions:\n{}",
        problems.join("\n")
    );
}

/// A task info with every modelled field set.
fn full_task() -> TaskInfoFields {
    let mut t = TaskInfoFields::new("web.1", "agent-1");
    t.resources = vec![Resource::scalar("cpus", 0.5), Resource::scalar("mem", 64.0)];
    t.executor = Some(ExecutorInfo {
        executor_id: ExecutorId::new("e"),
        framework_id: Some(FrameworkId::new("f")),
        name: Some("e".into()),
        shutdown_grace_period: Some(DurationInfo::from_duration(Duration::from_secs(5))),
    });
    t.command = Some(CommandInfo {
        uris: vec![Uri {
            value: "http://x".into(),
        }],
        environment: Some(Environment {
            variables: vec![EnvironmentVariable {
                name: "A".into(),
                kind: Some("VALUE".into()),
                value: Some("1".into()),
            }],
        }),
        shell: Some(false),
        value: Some("/bin/server".into()),
        arguments: vec!["server".into()],
        user: Some("nobody".into()),
    });
    t.container = Some(ContainerInfo {
        kind: ContainerType::Docker,
        volumes: vec![Volume {
            mode: VolumeMode::Ro,
            container_path: "/data".into(),
            host_path: Some("/srv".into()),
            image: None,
            source: None,
        }],
        hostname: Some("web".into()),
        docker: Some(DockerInfo {
            image: "busybox".into(),
            network: Some(DockerNetwork::User),
            port_mappings: vec![PortMapping {
                host_port: 31000,
                container_port: 80,
                protocol: Some("tcp".into()),
            }],
            privileged: Some(false),
            parameters: vec![Parameter {
                key: "k".into(),
                value: "v".into(),
            }],
            force_pull_image: Some(true),
        }),
        mesos: Some(MesosInfo {
            image: Some(Image {
                kind: ImageType::Docker,
                docker: Some(ImageDocker {
                    name: "busybox".into(),
                }),
            }),
        }),
        network_infos: vec![NetworkInfo {
            name: Some("front".into()),
        }],
    });
    t.health_check = Some(HealthCheckInfo {
        kind: Some(HealthCheckType::Http),
        delay_seconds: Some(1.0),
        interval_seconds: Some(1.0),
        timeout_seconds: Some(1.0),
        consecutive_failures: Some(3),
        grace_period_seconds: Some(1.0),
        command: Some(CommandInfo::shell("true")),
        http: Some(HttpCheckInfo {
            scheme: Some("http".into()),
            port: 80,
            path: Some("/".into()),
            statuses: vec![200],
        }),
        tcp: Some(TcpCheckInfo { port: 80 }),
    });
    t.kill_policy = Some(KillPolicyInfo {
        grace_period: Some(DurationInfo {
            nanoseconds: 3_000_000_000,
        }),
    });
    t.data = Some(Base64(b"opaque".to_vec()));
    t.labels = Some(Labels {
        labels: vec![Label {
            key: "k".into(),
            value: Some("v".into()),
        }],
    });
    t
}

fn full_status(state: TaskState, reason: Reason, source: Source) -> TaskStatus {
    let mut s = TaskStatus::new(TaskId::new("web.1"), state);
    s.message = Some("m".into());
    s.source = Some(source);
    s.reason = Some(reason);
    s.data = Some(Base64(vec![1, 2]));
    s.agent_id = Some(AgentId::new("a"));
    s.executor_id = Some(ExecutorId::new("e"));
    s.timestamp = Some(1.5);
    s.uuid = Some(Base64(uuid::Uuid::new_v4().as_bytes().to_vec()));
    s.healthy = Some(true);
    s.labels = Some(Labels {
        labels: vec![Label {
            key: "k".into(),
            value: None,
        }],
    });
    s
}

#[test]
fn every_call_matches_executor_proto() {
    let schema = schema();
    let (e, f) = (ExecutorId::new("e"), FrameworkId::new("f"));
    let status = full_status(
        TaskState::Running,
        Reason::TaskHealthCheckStatusUpdated,
        Source::Executor,
    );
    let task = TaskInfo::from_fields(&full_task());
    let calls = [
        Call::subscribe(
            e.clone(),
            f.clone(),
            vec![task],
            vec![Update {
                status: status.clone(),
            }],
        ),
        Call::update(e.clone(), f.clone(), status),
        Call::message(e.clone(), f.clone(), b"hello".to_vec()),
        Call::heartbeat(e, f),
    ];
    for call in &calls {
        assert_conforms(&schema, json(call), "mesos.executor.Call");
    }
}

#[test]
fn every_event_matches_executor_proto() {
    let schema = schema();
    let subscribed = Event {
        subscribed: Some(Subscribed {
            executor_info: ExecutorInfo {
                executor_id: ExecutorId::new("e"),
                framework_id: Some(FrameworkId::new("f")),
                name: Some("e".into()),
                shutdown_grace_period: Some(DurationInfo { nanoseconds: 5 }),
            },
            framework_info: FrameworkInfo {
                user: "root".into(),
                name: "marathon".into(),
                id: Some(FrameworkId::new("f")),
                checkpoint: Some(true),
                capabilities: vec![FrameworkCapability {
                    kind: Some("TASK_KILLING_STATE".into()),
                }],
            },
            agent_info: AgentInfo {
                hostname: "h".into(),
                id: Some(AgentId::new("a")),
                port: Some(5051),
            },
            container_id: Some(ContainerId {
                value: "c".into(),
                parent: None,
            }),
        }),
        ..Event::new(EventType::Subscribed)
    };
    let task = TaskInfo::from_fields(&full_task());
    let events = [
        subscribed,
        Event::launch(task.clone()),
        Event::launch_group(vec![task]),
        Event::kill(
            TaskId::new("t"),
            Some(KillPolicyInfo {
                grace_period: Some(DurationInfo { nanoseconds: 1 }),
            }),
        ),
        Event::acknowledged(TaskId::new("t"), vec![7; 16]),
        Event::message(b"hi".to_vec()),
        Event::error("bad"),
        Event::new(EventType::Shutdown),
        Event::new(EventType::Heartbeat),
    ];
    for event in &events {
        assert_conforms(&schema, json(event), "mesos.executor.Event");
        // What we emit we also read back.
        let back = Event::from_slice(&serde_json::to_vec(event).unwrap()).unwrap();
        assert_eq!(&back, event);
    }
}

#[test]
fn every_enum_value_exists() {
    let schema = schema();
    let check = |name: &str, values: Vec<Value>| {
        for v in values {
            let v = v.as_str().unwrap().to_owned();
            assert!(schema.enum_has(name, &v), "{v} is not a value of {name}");
        }
    };
    use TaskState::*;
    check(
        "mesos.TaskState",
        [
            Staging,
            Starting,
            Running,
            Killing,
            Finished,
            Failed,
            Killed,
            Error,
            Lost,
            Dropped,
            Unreachable,
            Gone,
            GoneByOperator,
            Unknown,
        ]
        .iter()
        .map(json)
        .collect(),
    );
    use Reason::*;
    check(
        "mesos.TaskStatus.Reason",
        [
            CommandExecutorFailed,
            ContainerLaunchFailed,
            ContainerLimitation,
            ContainerLimitationMemory,
            ContainerPreempted,
            ExecutorTerminated,
            TaskKilledDuringLaunch,
            TaskHealthCheckStatusUpdated,
            TaskGroupInvalid,
            TaskInvalid,
            TaskUnknown,
        ]
        .iter()
        .map(json)
        .collect(),
    );
    check(
        "mesos.TaskStatus.Source",
        [Source::Master, Source::Agent, Source::Executor]
            .iter()
            .map(json)
            .collect(),
    );
    check(
        "mesos.executor.Call.Type",
        [
            CallType::Subscribe,
            CallType::Update,
            CallType::Message,
            CallType::Heartbeat,
        ]
        .iter()
        .map(json)
        .collect(),
    );
    let event_types = [
        EventType::Subscribed,
        EventType::Launch,
        EventType::LaunchGroup,
        EventType::Kill,
        EventType::Acknowledged,
        EventType::Message,
        EventType::Error,
        EventType::Shutdown,
        EventType::Heartbeat,
    ];
    check(
        "mesos.executor.Event.Type",
        event_types.iter().map(json).collect(),
    );
    check(
        "mesos.ContainerInfo.DockerInfo.Network",
        [
            DockerNetwork::Host,
            DockerNetwork::Bridge,
            DockerNetwork::None,
            DockerNetwork::User,
        ]
        .iter()
        .map(json)
        .collect(),
    );
    check(
        "mesos.ContainerInfo.Type",
        [ContainerType::Docker, ContainerType::Mesos]
            .iter()
            .map(json)
            .collect(),
    );
    check(
        "mesos.Volume.Mode",
        [VolumeMode::Rw, VolumeMode::Ro].iter().map(json).collect(),
    );
    check(
        "mesos.Image.Type",
        [ImageType::Appc, ImageType::Docker]
            .iter()
            .map(json)
            .collect(),
    );
    use HealthCheckType as H;
    check(
        "mesos.HealthCheck.Type",
        [H::Unknown, H::Command, H::Http, H::Tcp]
            .iter()
            .map(json)
            .collect(),
    );
}

#[test]
fn every_status_the_driver_can_send_is_accepted_by_the_definitions() {
    let schema = schema();
    for state in [
        TaskState::Starting,
        TaskState::Running,
        TaskState::Killing,
        TaskState::Killed,
        TaskState::Error,
    ] {
        for reason in [
            Reason::ExecutorTerminated,
            Reason::TaskGroupInvalid,
            Reason::ContainerPreempted,
        ] {
            let call = Call::update(
                ExecutorId::new("e"),
                FrameworkId::new("f"),
                full_status(state, reason, Source::Executor),
            );
            assert_conforms(&schema, json(&call), "mesos.executor.Call");
        }
    }
}

#[test]
fn the_checker_catches_what_the_agent_would_refuse() {
    let schema = schema();
    let mut problems = vec![];
    let bad = serde_json::json!({
        "executor_id": {"value": "e"}, "framework_id": {"value": "f"}, "type": "UPDATE",
        "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_DONE", "uuid": "not base64!",
                              "taskId": 1}}
    });
    schema.check(&bad, "mesos.executor.Call", "Call", &mut problems);
    let text = problems.join("\n");
    assert!(text.contains("TASK_DONE"), "{text}");
    assert!(text.contains("uuid"), "{text}");
    assert!(text.contains("no field `taskId`"), "{text}");
}
