//! Validation errors.

use std::fmt;

/// A value that is not allowed. `field` is a path such as `services[0].desiredCount`;
/// `message` says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field path with `parent` (`parent.field`).
    pub fn within(mut self, parent: &str) -> Self {
        if parent.is_empty() {
            return self;
        }
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ValidationError {}

pub type Result<T> = std::result::Result<T, ValidationError>;

/// Checks `lo <= v <= hi` for the field `field`.
pub fn check_range<T>(field: &str, v: T, lo: T, hi: T) -> Result<()>
where
    T: PartialOrd + fmt::Display + Copy,
{
    if v < lo || v > hi {
        return Err(ValidationError::new(
            field,
            format!("must be between {lo} and {hi}, got {v}"),
        ));
    }
    Ok(())
}

/// Checks a resource name: 1 to `max` letters, digits, hyphens and underscores.
pub fn check_name(field: &str, name: &str, max: usize) -> Result<()> {
    if name.is_empty() || name.len() > max {
        return Err(ValidationError::new(
            field,
            format!(
                "must be 1 to {max} characters long, got {} characters",
                name.len()
            ),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(ValidationError::new(
            field,
            format!("may contain only letters, digits, hyphens and underscores, found {c:?} in {name:?}"),
        ));
    }
    Ok(())
}
