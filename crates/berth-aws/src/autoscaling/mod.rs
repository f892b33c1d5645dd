//! Application Auto Scaling over JSON 1.1.

use serde_json::Value;

use crate::native::Native;
use crate::protocol::AwsError;

pub async fn dispatch(_native: &Native, operation: &str, _body: &[u8]) -> Result<Value, AwsError> {
    Err(AwsError::new(
        "UnknownOperationException",
        format!("berth's Application Auto Scaling API has no operation {operation:?}"),
    ))
}
