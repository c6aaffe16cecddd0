//! The fake API server's ConfigMaps: create, get and delete in Kubernetes JSON with the API
//! server's checks (name, keys, the 1 MiB size limit), and the garbage collector's part: a
//! ConfigMap whose owner pod is deleted goes with it (in the store).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use k8s_openapi::api::core::v1::ConfigMap;

use super::http::{forbidden, invalid_object, json_response, object_json, status};
use super::store::{Store, now};

/// The API server's limit on a ConfigMap's data (`MaxSecretSize`, shared by ConfigMaps).
const MAX_SIZE: usize = 1024 * 1024;

pub(crate) fn routes() -> Router<Store> {
    Router::new()
        .route("/api/v1/namespaces/{ns}/configmaps", post(create))
        .route(
            "/api/v1/namespaces/{ns}/configmaps/{name}",
            get(read).delete(delete),
        )
}

fn not_found(name: &str) -> Response {
    status(404, "NotFound", &format!("configmaps \"{name}\" not found"))
}

fn invalid(name: &str, field: &str, reason: &str, problem: &str) -> Response {
    invalid_object("ConfigMap", name, field, reason, problem)
}

/// A ConfigMap key: at most 253 characters of letters, digits, `-`, `_` and `.`.
fn check_key(key: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && key != "..";
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid value: \"{key}\": a valid config key must consist of alphanumeric \
             characters, '-', '_' or '.'"
        ))
    }
}

async fn create(State(store): State<Store>, Path(ns): Path<String>, body: Bytes) -> Response {
    store.count("configmap-create");
    if let Some(refusal) = forbidden(&store, "create", "configmaps", &ns) {
        return refusal;
    }
    let mut map: ConfigMap = match serde_json::from_slice(&body) {
        Ok(map) => map,
        Err(e) => return status(400, "BadRequest", &format!("error decoding configmap: {e}")),
    };
    let Some(name) = map.metadata.name.clone() else {
        return invalid("", "metadata.name", "FieldValueRequired", "Required value");
    };
    if let Err(problem) = super::selector::check_dns_subdomain(&name) {
        return invalid(&name, "metadata.name", "FieldValueInvalid", &problem);
    }
    let text = map.data.clone().unwrap_or_default();
    let binary = map.binary_data.clone().unwrap_or_default();
    let mut size = 0;
    for (key, value) in &text {
        if let Err(problem) = check_key(key) {
            return invalid(
                &name,
                &format!("data[{key}]"),
                "FieldValueInvalid",
                &problem,
            );
        }
        if binary.contains_key(key) {
            return invalid(
                &name,
                &format!("data[{key}]"),
                "FieldValueInvalid",
                "duplicate of key present in binaryData",
            );
        }
        size += value.len();
    }
    for (key, value) in &binary {
        if let Err(problem) = check_key(key) {
            return invalid(
                &name,
                &format!("binaryData[{key}]"),
                "FieldValueInvalid",
                &problem,
            );
        }
        size += value.0.len();
    }
    if size > MAX_SIZE {
        return invalid(
            &name,
            "[]",
            "FieldValueTooLong",
            &format!("Too long: must have at most {MAX_SIZE} bytes"),
        );
    }
    map.metadata.namespace = Some(ns.clone());
    map.metadata.creation_timestamp = Some(now());
    {
        let mut state = store.lock();
        let key = (ns, name.clone());
        if state.config_maps.contains_key(&key) {
            return status(
                409,
                "AlreadyExists",
                &format!("configmaps \"{name}\" already exists"),
            );
        }
        state.rv += 1;
        map.metadata.uid = Some(state.new_uid());
        map.metadata.resource_version = Some(state.rv.to_string());
        state.config_maps.insert(key, map.clone());
    }
    store.config_maps_changed();
    json_response(StatusCode::CREATED, &object_json(&map, "ConfigMap"))
}

async fn read(State(store): State<Store>, Path((ns, name)): Path<(String, String)>) -> Response {
    store.count("configmap-get");
    if let Some(refusal) = forbidden(&store, "get", "configmaps", &ns) {
        return refusal;
    }
    let found = store.lock().config_maps.get(&(ns, name.clone())).cloned();
    match found {
        Some(map) => json_response(StatusCode::OK, &object_json(&map, "ConfigMap")),
        None => not_found(&name),
    }
}

async fn delete(State(store): State<Store>, Path((ns, name)): Path<(String, String)>) -> Response {
    store.count("configmap-delete");
    if let Some(refusal) = forbidden(&store, "delete", "configmaps", &ns) {
        return refusal;
    }
    let removed = store.lock().config_maps.remove(&(ns, name.clone()));
    match removed {
        Some(map) => {
            store.config_maps_changed();
            json_response(StatusCode::OK, &object_json(&map, "ConfigMap"))
        }
        None => not_found(&name),
    }
}
