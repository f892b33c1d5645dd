//! Resource tags, as ECS writes them, and ECS's rules for them.

use serde::{Deserialize, Serialize};

use crate::error::{Result, ValidationError};

/// A resource tag, as ECS writes them (`key`, `value`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tag {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// Checks tags as ECS does: at most 50, keys 1-128 characters, values at most 256, and
/// no key starting with `aws:` (reserved for AWS's own use).
pub fn check_tags(field: &str, tags: &[Tag]) -> Result<()> {
    if tags.len() > 50 {
        return Err(ValidationError::new(
            field,
            format!("may list at most 50 tags, got {}", tags.len()),
        ));
    }
    for (i, t) in tags.iter().enumerate() {
        if t.key.is_empty() || t.key.chars().count() > 128 {
            return Err(ValidationError::new(
                format!("{field}[{i}].key"),
                format!("must be 1 to 128 characters long, got {:?}", t.key),
            ));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(ValidationError::new(
                format!("{field}[{i}].key"),
                format!("keys starting with aws: are reserved, got {:?}", t.key),
            ));
        }
        if t.value.chars().count() > 256 {
            return Err(ValidationError::new(
                format!("{field}[{i}].value"),
                "must be at most 256 characters long",
            ));
        }
    }
    Ok(())
}
