//! Reading a JSON 1.1 request's members: a member of the wrong type is a
//! `SerializationException` (as AWS answers a body it cannot read into its shapes), a
//! missing required member the service's own bad-input error, naming the member.

use serde_json::{Map, Value};

use crate::protocol::AwsError;

/// A JSON 1.1 request body: an object of members.
pub struct Input {
    members: Map<String, Value>,
    /// The error code of a missing or out-of-range member (`InvalidParameterException`
    /// in ECS, `ValidationException` in Application Auto Scaling).
    invalid_code: &'static str,
}

impl Input {
    /// Parses `body`; an empty body is an empty object, as botocore sends `{}`.
    pub fn parse(body: &[u8], invalid_code: &'static str) -> Result<Self, AwsError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self {
                members: Map::new(),
                invalid_code,
            });
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(members)) => Ok(Self {
                members,
                invalid_code,
            }),
            Ok(_) => Err(AwsError::serialization(
                "the request body must be a JSON object",
            )),
            Err(e) => Err(AwsError::serialization(format!(
                "the request body is not JSON: {e}"
            ))),
        }
    }

    /// The error for a member that is missing or out of range.
    pub fn invalid(&self, message: impl Into<String>) -> AwsError {
        AwsError::new(self.invalid_code, message)
    }

    /// The member as given (`None` when absent or null).
    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.members.get(name).filter(|v| !v.is_null())
    }

    /// The whole body.
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }

    pub fn opt_str(&self, name: &str) -> Result<Option<String>, AwsError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(wrong_type(name, "a string", v)),
        }
    }

    pub fn req_str(&self, name: &str) -> Result<String, AwsError> {
        self.opt_str(name)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.invalid(format!("{name}: required, and missing")))
    }

    pub fn opt_i64(&self, name: &str) -> Result<Option<i64>, AwsError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(v) => Err(wrong_type(name, "an integer", v)),
        }
    }

    pub fn opt_f64(&self, name: &str) -> Result<Option<f64>, AwsError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(v) => Err(wrong_type(name, "a number", v)),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, AwsError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(wrong_type(name, "a boolean", v)),
        }
    }

    pub fn opt_object(&self, name: &str) -> Result<Option<&Map<String, Value>>, AwsError> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(v) => Err(wrong_type(name, "a structure", v)),
        }
    }

    /// A list of strings (absent: empty).
    pub fn str_list(&self, name: &str) -> Result<Vec<String>, AwsError> {
        match self.raw(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    v => Err(wrong_type(&format!("{name}[{i}]"), "a string", v)),
                })
                .collect(),
            Some(v) => Err(wrong_type(name, "a list", v)),
        }
    }

    /// A required, non-empty list of strings.
    pub fn req_str_list(&self, name: &str) -> Result<Vec<String>, AwsError> {
        let v = self.str_list(name)?;
        if v.is_empty() {
            return Err(self.invalid(format!("{name}: required, and missing or empty")));
        }
        Ok(v)
    }
}

fn wrong_type(name: &str, want: &str, got: &Value) -> AwsError {
    let kind = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a structure",
    };
    AwsError::serialization(format!("{name}: must be {want}, got {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_and_missing_members_name_the_member() {
        let i = Input::parse(
            br#"{"desiredCount":"3","cluster":"c"}"#,
            "InvalidParameterException",
        )
        .unwrap();
        let e = i.opt_i64("desiredCount").unwrap_err();
        assert_eq!(e.code, "SerializationException");
        assert_eq!(e.message, "desiredCount: must be an integer, got a string");
        let e = i.req_str("serviceName").unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        assert!(e.message.starts_with("serviceName:"));
        assert_eq!(i.req_str("cluster").unwrap(), "c");
        assert!(Input::parse(b"[1]", "X").is_err());
        assert!(Input::parse(b"", "X").unwrap().members().is_empty());
    }
}
