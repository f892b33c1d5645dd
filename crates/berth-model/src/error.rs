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

    /// The error of a parser at `path` whose `message` may begin with its own idea of
    /// the path: serde_yaml_ng writes the parent's path (`services[0]: unknown field
    /// ...`), which would repeat what `path` already names. That prefix is dropped, so
    /// the path appears once.
    pub fn parse(path: impl Into<String>, message: &str) -> Self {
        let field = path.into();
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if names_part_of(&field, prefix) => rest,
            _ => message,
        };
        Self::new(field, message)
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

/// Whether `prefix` (a parser's path such as `services[0]` or `.`) is `field` or one of
/// its parents.
fn names_part_of(field: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_start_matches('.');
    if prefix.is_empty() || prefix.contains(' ') {
        return prefix.is_empty() && !field.is_empty();
    }
    field == prefix
        || field
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parser_path_in_the_message_is_not_repeated() {
        let e = ValidationError::parse(
            "services[0].desiredCnt",
            "services[0]: unknown field `desiredCnt`, expected one of ... at line 3 column 5",
        );
        assert_eq!(e.field, "services[0].desiredCnt");
        assert_eq!(
            e.to_string(),
            "services[0].desiredCnt: unknown field `desiredCnt`, expected one of ... at line 3 column 5"
        );
        // A message that does not start with a parent path is kept whole.
        let e = ValidationError::parse("a.b", "invalid type: string \"x\", expected u32");
        assert_eq!(e.message, "invalid type: string \"x\", expected u32");
        let e = ValidationError::parse("clusters", "clustersX: no");
        assert_eq!(e.message, "clustersX: no");
    }
}
