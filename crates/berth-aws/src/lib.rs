//! berth-aws: the AWS front door. The AWS CLI and the SDKs (boto3) drive berth
//! unchanged: `POST /` requests in ECS's and Application Auto Scaling's JSON 1.1
//! protocol (`X-Amz-Target`) and ELBv2's query protocol (form body with `Action=`) are
//! recognised per request, dispatched by operation, and translated into berth's own
//! `/v1` API, whose answers are translated back into the wire shapes botocore expects.
//! One state: what the AWS API creates, `berth get` shows, and the other way round.
//!
//! What it does not do: verify signatures or evaluate policies (a layer wrapping the
//! whole API router does), keep any state of its own, or decide anything the native
//! API does not (validation, defaults and the store's rules are the control plane's).
//!
//! Layout:
//! - [`protocol`]: recognising the protocol, request ids, error answers in each.
//! - [`native`]: the in-process client of the `/v1` router.
//! - [`paging`]: `nextToken`/`maxResults` pages.
//! - [`ecs`]: ECS (JSON 1.1, `AmazonEC2ContainerServiceV20141113`).
//! - [`elbv2`]: ELBv2 (query protocol, XML answers).
//! - [`autoscaling`]: Application Auto Scaling (JSON 1.1, `AnyScaleFrontendService`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Request};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use tower::ServiceExt;

pub mod autoscaling;
pub mod ecs;
pub mod elbv2;
pub mod json_input;
pub mod native;
pub mod paging;
pub mod protocol;

use protocol::{AwsError, Recognised};

/// Adds the AWS front door to berth's API router: `POST /` requests that carry
/// `X-Amz-Target` or a form body with `Action=` are answered here; every other request
/// (and a `POST /` that is neither) goes to `api` as before.
///
/// `db` is the control plane's store, for the operations the `/v1` API has no route
/// for (RunTask, RegisterTargets, DeregisterTargets).
pub fn with_front_door(api: Router, db: berth_control::Db) -> Router {
    let door = Arc::new(FrontDoor {
        native: native::Native::new(api.clone()),
        db,
        api: api.clone(),
    });
    api.route(
        "/",
        post(move |headers: HeaderMap, body: Bytes| {
            let door = door.clone();
            async move { door.handle(headers, body).await }
        }),
    )
}

struct FrontDoor {
    native: native::Native,
    db: berth_control::Db,
    /// The API router, for a `POST /` that is no AWS request.
    api: Router,
}

impl FrontDoor {
    async fn handle(&self, headers: HeaderMap, body: Bytes) -> Response {
        let request_id = protocol::new_request_id();
        match protocol::recognise(&headers, &body) {
            Recognised::Json { prefix, operation } => {
                let result = match prefix.as_str() {
                    protocol::ECS_TARGET_PREFIX => {
                        ecs::dispatch(&self.native, &self.db, &operation, &body).await
                    }
                    protocol::AUTOSCALING_TARGET_PREFIX => {
                        autoscaling::dispatch(&self.native, &operation, &body).await
                    }
                    other => Err(AwsError::new(
                        "UnknownOperationException",
                        format!(
                            "X-Amz-Target: berth serves {} and {}, got {other:?}",
                            protocol::ECS_TARGET_PREFIX,
                            protocol::AUTOSCALING_TARGET_PREFIX
                        ),
                    )),
                };
                match result {
                    Ok(v) => protocol::json_ok(&v, &request_id),
                    Err(e) => e.json_response(&request_id),
                }
            }
            Recognised::Query { params } => {
                elbv2::handle(&self.native, &self.db, &params, &request_id).await
            }
            Recognised::NotAws => {
                let mut req = Request::post("/");
                for (k, v) in &headers {
                    req = req.header(k, v);
                }
                let req = req.body(axum::body::Body::from(body)).expect("request");
                match self.api.clone().oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            }
        }
    }
}
