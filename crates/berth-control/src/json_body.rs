//! Reading a JSON request body so that a bad one gets an ECS-style error naming the
//! field (`InvalidParameterException: services[0].desiredCount: ...`).

use crate::error::ApiError;

/// Parses a JSON body ourselves so a bad one gets an ECS-style error naming the field.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::invalid(format!("request body: {inner}"))
        } else {
            ApiError::invalid(format!("{path}: {inner}"))
        }
    })
}
