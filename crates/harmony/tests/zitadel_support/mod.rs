//! A scripted Kubernetes API for the CNPG and Zitadel tests (`tower_test`, the kube-rs way): the
//! test plays the API server, checks each request and answers with what a real one sends.

#![allow(dead_code)] // each test binary uses a different subset

use std::time::Duration;

use anyhow::{Context, Result};
use harmony_k8s::K8sClient;
use http::{Request, Response, StatusCode};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock::{Handle, SendResponse};

pub type ApiServer = Handle<Request<Body>, Response<Body>>;

pub fn mock_client() -> (K8sClient, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        K8sClient::new(kube::Client::new(service, "default")),
        handle,
    )
}

pub async fn next_request(
    server: &mut ApiServer,
) -> Result<(Request<Body>, SendResponse<Response<Body>>)> {
    tokio::time::timeout(Duration::from_secs(5), server.next_request())
        .await
        .context("the client sent no request within 5 s")?
        .context("the client dropped the service")
}

/// No further request arrives within a short while.
pub async fn no_more_requests(server: &mut ApiServer) -> Result<()> {
    match tokio::time::timeout(Duration::from_millis(200), server.next_request()).await {
        Err(_) | Ok(None) => Ok(()),
        Ok(Some((req, _))) => anyhow::bail!("unexpected request {} {}", req.method(), req.uri()),
    }
}

pub fn respond(send: SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
    let bytes = serde_json::to_vec(body).expect("JSON serialises");
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    send.send_response(response);
}

pub fn not_found(send: SendResponse<Response<Body>>, what: &str) {
    respond(
        send,
        StatusCode::NOT_FOUND,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("{what} not found"),
            "reason": "NotFound", "code": 404,
        }),
    );
}

pub async fn body_json(request: Request<Body>) -> Result<Value> {
    let bytes = request
        .into_body()
        .collect_bytes()
        .await
        .context("read request body")?;
    serde_json::from_slice(&bytes).context("request body is JSON")
}

pub fn query(request: &Request<Body>) -> String {
    request.uri().query().unwrap_or_default().to_owned()
}
pub mod management;
