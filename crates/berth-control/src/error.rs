//! Errors: [`ControlError`], what the control plane's store access, reconcilers and apply
//! fail with, and [`ApiError`], what the HTTP API answers, named as ECS and ELBv2 name
//! them.
//!
//! Code inside the control plane matches on [`ControlError`]'s variants; a control error
//! becomes an [`ApiError`] (an ECS error name, an HTTP status and a message) only at the
//! API edge, through `From<ControlError> for ApiError`. Nothing here decides by comparing
//! error names or message text.

use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use berth_model::ValidationError;
use berth_store::{Expect, Revision, StoreError};

/// A resource the control plane looked for, with the names that identify it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Cluster { name: String },
    TaskDefinition { name: String },
    Service { cluster: String, name: String },
    Task { cluster: String, id: String },
    TargetGroup { name: String },
    LoadBalancer { name: String },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Cluster { name } => write!(
                f,
                "cluster {name:?} not found; create it first (berth apply with a clusters entry)"
            ),
            Missing::TaskDefinition { name } => write!(
                f,
                "task definition {name:?} not found; register it first (taskDefinitions in a stack file)"
            ),
            Missing::Service { cluster, name } => {
                write!(f, "service {name:?} not found in cluster {cluster:?}")
            }
            Missing::Task { cluster, id } => {
                write!(f, "task {id:?} not found in cluster {cluster:?}")
            }
            Missing::TargetGroup { name } => write!(f, "target group {name:?} not found"),
            Missing::LoadBalancer { name } => write!(f, "load balancer {name:?} not found"),
        }
    }
}

/// Why a control-plane operation failed. Its `Display` is the message the API shows.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(Missing),
    /// A guarded write found the key changed since it was read; reading again and
    /// retrying is the fix.
    #[error("compare failed on {key}: expected {expected:?}, found mod revision {actual:?}; the resource changed meanwhile, retry")]
    Conflict {
        key: String,
        expected: Expect,
        actual: Option<Revision>,
    },
    /// A value that is not allowed, at `field` (a path such as `services[0].cluster`).
    #[error("{}", ValidationError::new(field.clone(), message.clone()))]
    Invalid { field: String, message: String },
    /// The resource is in use or in a state that forbids the change.
    #[error("{message}")]
    InUse { message: String },
    /// A value in the store does not decode as the resource its key holds.
    #[error("stored value at {key} does not decode: {message}")]
    Decode { key: String, message: String },
    /// A read-modify-write lost the race to other writers too many times in a row.
    #[error("too many concurrent updates of {key}")]
    Contended { key: String },
    /// The store failed for another reason than a conflict.
    #[error("{0}")]
    Store(StoreError),
    /// The data plane refused a configuration without naming a load balancer to blame.
    #[error("proxy rejected its configuration: {0}")]
    DataPlaneRefused(berth_model::dataplane::ConfigRefusal),
    /// The mesh's certificate authority could not be created, loaded or used.
    #[error("the mesh's certificate authority: {0}")]
    MeshCa(#[from] crate::mesh_ca::MeshCaError),
}

impl ControlError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ControlError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn in_use(message: impl Into<String>) -> Self {
        ControlError::InUse {
            message: message.into(),
        }
    }
}

impl From<ValidationError> for ControlError {
    fn from(e: ValidationError) -> Self {
        ControlError::Invalid {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict {
                key,
                expected,
                actual,
            } => ControlError::Conflict {
                key,
                expected,
                actual,
            },
            other => ControlError::Store(other),
        }
    }
}

/// An error the API returns: `{"__type": "<code>", "message": "..."}` with an HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// The ECS/ELBv2 error name, e.g. `InvalidParameterException`.
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            status,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", 400, message)
    }

    pub fn client(message: impl Into<String>) -> Self {
        Self::new("ClientException", 400, message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::new("ServerException", 500, message)
    }

    pub fn cluster_not_found(name: &str) -> Self {
        ControlError::NotFound(Missing::Cluster { name: name.into() }).into()
    }

    pub fn service_not_found(cluster: &str, name: &str) -> Self {
        ControlError::NotFound(Missing::Service {
            cluster: cluster.into(),
            name: name.into(),
        })
        .into()
    }

    pub fn target_group_not_found(name: &str) -> Self {
        ControlError::NotFound(Missing::TargetGroup { name: name.into() }).into()
    }

    pub fn load_balancer_not_found(name: &str) -> Self {
        ControlError::NotFound(Missing::LoadBalancer { name: name.into() }).into()
    }

    pub fn task_definition_not_found(name: &str) -> Self {
        ControlError::NotFound(Missing::TaskDefinition { name: name.into() }).into()
    }

    pub fn task_not_found(cluster: &str, id: &str) -> Self {
        ControlError::NotFound(Missing::Task {
            cluster: cluster.into(),
            id: id.into(),
        })
        .into()
    }

    pub fn in_use(message: impl Into<String>) -> Self {
        ControlError::in_use(message).into()
    }
}

/// The ECS error name and HTTP status of a missing resource.
fn not_found_code(m: &Missing) -> (&'static str, u16) {
    match m {
        Missing::Cluster { .. } => ("ClusterNotFoundException", 404),
        Missing::TaskDefinition { .. } => ("ClientException", 404),
        Missing::Service { .. } => ("ServiceNotFoundException", 404),
        Missing::Task { .. } => ("InvalidParameterException", 404),
        Missing::TargetGroup { .. } => ("TargetGroupNotFoundException", 404),
        Missing::LoadBalancer { .. } => ("LoadBalancerNotFoundException", 404),
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let (code, status) = match &e {
            ControlError::NotFound(m) => not_found_code(m),
            ControlError::Conflict { .. } => ("ConflictException", 409),
            ControlError::Invalid { .. } => ("InvalidParameterException", 400),
            ControlError::InUse { .. } => ("ResourceInUseException", 409),
            ControlError::Decode { .. }
            | ControlError::Contended { .. }
            | ControlError::Store(_)
            | ControlError::DataPlaneRefused(_)
            | ControlError::MeshCa(_) => ("ServerException", 500),
        };
        ApiError::new(code, status, e.to_string())
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ControlError::from(e).into()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ControlError::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({"__type": self.code, "message": self.message});
        (status, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_conflict_reads_as_before() {
        let store = StoreError::Conflict {
            key: "/services/default/web".into(),
            expected: Expect::ModRevision(7),
            actual: Some(9),
        };
        let expected_message = format!("{store}; the resource changed meanwhile, retry");
        let e = ControlError::from(store);
        assert!(matches!(e, ControlError::Conflict { .. }), "{e:?}");
        let api = ApiError::from(e);
        assert_eq!(api.code, "ConflictException");
        assert_eq!(api.status, 409);
        assert_eq!(api.message, expected_message);
    }

    #[test]
    fn other_store_errors_are_server_errors() {
        let e = ControlError::from(StoreError::Backend("disk full".into()));
        assert!(matches!(e, ControlError::Store(_)), "{e:?}");
        let api = ApiError::from(e);
        assert_eq!(
            (api.code, api.status, api.message.as_str()),
            ("ServerException", 500, "store backend error: disk full")
        );
    }

    #[test]
    fn invalid_keeps_the_validation_message() {
        let v = ValidationError::new("services[0].cluster", "cluster \"x\" does not exist");
        let expected_message = v.to_string();
        let e = ControlError::from(v);
        assert_eq!(e.to_string(), expected_message);
        let api = ApiError::from(e);
        assert_eq!(api.code, "InvalidParameterException");
        assert_eq!(api.status, 400);
        assert_eq!(api.message, expected_message);
        // An empty field shows the message alone, as ValidationError does.
        assert_eq!(ControlError::invalid("", "bad").to_string(), "bad");
    }

    #[test]
    fn not_found_names_and_statuses() {
        let cases = [
            (
                ApiError::cluster_not_found("c"),
                "ClusterNotFoundException",
                "cluster \"c\" not found; create it first (berth apply with a clusters entry)",
            ),
            (
                ApiError::service_not_found("c", "s"),
                "ServiceNotFoundException",
                "service \"s\" not found in cluster \"c\"",
            ),
            (
                ApiError::target_group_not_found("t"),
                "TargetGroupNotFoundException",
                "target group \"t\" not found",
            ),
            (
                ApiError::load_balancer_not_found("l"),
                "LoadBalancerNotFoundException",
                "load balancer \"l\" not found",
            ),
            (
                ApiError::task_definition_not_found("web"),
                "ClientException",
                "task definition \"web\" not found; register it first (taskDefinitions in a stack file)",
            ),
            (
                ApiError::task_not_found("c", "abc"),
                "InvalidParameterException",
                "task \"abc\" not found in cluster \"c\"",
            ),
        ];
        for (e, code, message) in cases {
            assert_eq!((e.code, e.status, e.message.as_str()), (code, 404, message));
        }
    }

    #[test]
    fn in_use_and_server_side_failures() {
        let e = ApiError::in_use("busy");
        assert_eq!(
            (e.code, e.status, e.message.as_str()),
            ("ResourceInUseException", 409, "busy")
        );
        let e = ApiError::from(ControlError::Contended { key: "/k".into() });
        assert_eq!(
            (e.code, e.status, e.message.as_str()),
            ("ServerException", 500, "too many concurrent updates of /k")
        );
        let e = ApiError::from(ControlError::Decode {
            key: "/k".into(),
            message: "eof".into(),
        });
        assert_eq!(e.message, "stored value at /k does not decode: eof");
        assert_eq!(e.status, 500);
    }
}
