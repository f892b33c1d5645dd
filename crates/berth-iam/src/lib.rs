//! berth-iam: access control in the AWS model, as pure functions.
//!
//! What it does:
//! - [`sigv4`]: AWS Signature Version 4 — the canonical request, the string to sign, the
//!   derived key; signing a request (the CLI) and verifying one (the server) with a
//!   constant-time compare and a clock-skew window, refusing with AWS's error codes and
//!   messages ([`AuthError`]).
//! - [`policy`]: IAM policy documents (`Version`, `Statement` with `Sid`, `Effect`,
//!   `Action`, `Resource`), validated naming the field (`MalformedPolicyDocument`), and
//!   their evaluation: an explicit deny wins, else any allow, else the implicit deny.
//! - [`actions`]: the IAM action an AWS-protocol request asks for (`X-Amz-Target` of the
//!   JSON protocols, the form `Action` of the query protocol), shared by the native API's
//!   guard and the AWS front door.
//! - [`keys`]: the shape of access key ids and secrets, and sealing a secret with
//!   AES-256-GCM under a key kept outside the store.
//! - [`session`]: a role session's temporary credentials (`ASIA...` with a session
//!   token), self-verifying under a key derived from the sealing key.
//! - [`time`]: the `X-Amz-Date` format to and from Unix seconds.
//!
//! What it does not do: any I/O. It reads no clock (the caller passes the time), draws no
//! randomness (the caller passes the random bytes), reads no store and knows no HTTP
//! library: requests come in as method, path, query, headers and a payload hash.

pub mod actions;
pub mod hex;
pub mod keys;
pub mod policy;
pub mod session;
pub mod sigv4;
pub mod time;

pub use policy::{Decision, PolicyDocument, PolicyError};
pub use sigv4::{AuthError, Authorization};
