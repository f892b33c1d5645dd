//! The body of a request sent to a target, shared by the upstream connections (`pool`),
//! the mesh's TLS hop (`mesh::hop`) and the health checks.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// The body of a request sent to a target: the client's, or one the proxy made.
pub(crate) type UpBody = Either<Incoming, Full<Bytes>>;
