//! The Lambda API's front door: any method, path, query and body through the router, over a
//! real store and a host that accepts every deployment. Every answer is an HTTP response, an
//! error carries AWS's error type header, and nothing panics.
#![no_main]

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use hoist_aws::AwsError;
use hoist_aws::lambda::{
    Deployment, FunctionHost, InvokeOutput, InvokeRequest, LambdaConfig, LambdaService,
};
use hoist_store::Store;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

struct AcceptingHost;

#[async_trait]
impl FunctionHost for AcceptingHost {
    async fn deploy(&self, _deployment: Deployment) -> Result<(), AwsError> {
        Ok(())
    }

    async fn remove(&self, _function: &str, _version: Option<&str>) -> Result<(), AwsError> {
        Ok(())
    }

    async fn invoke(&self, request: InvokeRequest) -> Result<InvokeOutput, AwsError> {
        Ok(InvokeOutput {
            payload: request.payload,
            function_error: None,
            log_tail: None,
        })
    }
}

struct World {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _state: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let state = tempfile::tempdir().expect("a state directory");
        let store = Store::open(state.path()).expect("the store opens");
        let service = runtime.block_on(LambdaService::start(
            store,
            Arc::new(AcceptingHost),
            LambdaConfig::default(),
        ));
        World {
            runtime,
            router: service.router(),
            _state: state,
        }
    })
}

const METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PUT, Method::DELETE];

fuzz_target!(|input: (u8, String, Vec<u8>)| {
    let (method, path, body) = input;
    let world = world();
    let Ok(request) = Request::builder()
        .method(METHODS[usize::from(method) % METHODS.len()].clone())
        .uri(format!("/2015-03-31/{}", path.trim_start_matches('/')))
        .header("content-type", "application/json")
        .body(Body::from(body))
    else {
        return;
    };
    let response = world
        .runtime
        .block_on(world.router.clone().oneshot(request))
        .expect("the router always answers");
    if response.status().is_client_error() || response.status().is_server_error() {
        assert!(
            response.headers().contains_key("x-amzn-errortype"),
            "an error without X-Amzn-ErrorType: {}",
            response.status()
        );
    }
});
