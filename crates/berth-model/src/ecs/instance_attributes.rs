//! Container instance attributes: the names berth sets on every instance it registers,
//! and the rules a custom attribute (`berth server --attribute NAME=VALUE`) follows,
//! which are ECS's PutAttributes rules plus berth's reserved names.
//!
//! It does not register anything: the agent puts the attributes on its instance.

use crate::error::{Result, ValidationError};

/// The operating system, as ECS's `ecs.os-type` spells it (`linux`).
pub const OS_TYPE: &str = "berth.os-type";
/// The CPU architecture, as ECS's `ecs.cpu-architecture` spells it (`x86_64`, `arm64`).
pub const CPU_ARCHITECTURE: &str = "berth.cpu-architecture";
/// ECS's names for the two above, set as well so that expressions written for ECS hold.
pub const ECS_OS_TYPE: &str = "ecs.os-type";
pub const ECS_CPU_ARCHITECTURE: &str = "ecs.cpu-architecture";

/// ECS's longest attribute name and value.
pub const MAX_ATTRIBUTE_LEN: usize = 128;

/// ECS's spelling of a Rust target architecture (`std::env::consts::ARCH`).
pub fn ecs_cpu_architecture(rust_arch: &str) -> &str {
    match rust_arch {
        "aarch64" => "arm64",
        other => other,
    }
}

/// Whether berth sets attribute `name` itself: every `berth.` name, and ECS's names of
/// the built-ins berth sets.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with("berth.") || name == ECS_OS_TYPE || name == ECS_CPU_ARCHITECTURE
}

/// Checks a custom attribute as ECS's PutAttributes does: a name of 1 to 128 letters,
/// digits, hyphens, underscores, periods, slashes and backslashes, not one berth sets;
/// a value of 1 to 128 letters, digits, hyphens, underscores, periods, at signs,
/// slashes, backslashes, colons and spaces, not starting or ending with a space.
pub fn check_custom_attribute(name: &str, value: &str) -> Result<()> {
    let length = |what: &str, s: &str| {
        if s.is_empty() || s.len() > MAX_ATTRIBUTE_LEN {
            Err(ValidationError::new(
                what,
                format!(
                    "must be 1 to {MAX_ATTRIBUTE_LEN} characters long, got {}",
                    s.len()
                ),
            ))
        } else {
            Ok(())
        }
    };
    length("name", name)?;
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | '\\')))
    {
        return Err(ValidationError::new(
            "name",
            format!(
                "may contain letters, digits, hyphens, underscores, periods, slashes and \
                 backslashes, found {c:?} in {name:?}"
            ),
        ));
    }
    if is_reserved(name) {
        return Err(ValidationError::new(
            "name",
            format!("{name:?} is set by berth: berth.* names, {ECS_OS_TYPE} and {ECS_CPU_ARCHITECTURE} are reserved"),
        ));
    }
    length("value", value)?;
    if let Some(c) = value.chars().find(|c| {
        !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '/' | '\\' | ':' | ' '))
    }) {
        return Err(ValidationError::new(
            "value",
            format!(
                "may contain letters, digits, hyphens, underscores, periods, at signs, \
                 slashes, backslashes, colons and spaces, found {c:?} in {value:?}"
            ),
        ));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(ValidationError::new(
            "value",
            format!("may not start or end with a space, got {value:?}"),
        ));
    }
    Ok(())
}

/// `NAME=VALUE`, checked by [`check_custom_attribute`].
pub fn parse_custom_attribute(text: &str) -> Result<(String, String)> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(ValidationError::new(
            "",
            format!("expected NAME=VALUE, got {text:?}"),
        ));
    };
    check_custom_attribute(name, value)?;
    Ok((name.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_attributes_follow_ecs_rules() {
        assert_eq!(
            parse_custom_attribute("zone=a").unwrap(),
            ("zone".to_string(), "a".to_string())
        );
        assert_eq!(
            parse_custom_attribute("team/x.y_z-1=ops@example:prod 2")
                .unwrap()
                .1,
            "ops@example:prod 2"
        );
        assert_eq!(
            parse_custom_attribute("ecs.availability-zone=us-east-1a")
                .unwrap()
                .0,
            "ecs.availability-zone",
            "ECS names berth does not set are the operator's"
        );
        let cases = [
            ("zone", "expected NAME=VALUE"),
            ("=a", "name: must be 1 to 128"),
            ("zone=", "value: must be 1 to 128"),
            ("zo ne=a", "name: may contain letters"),
            ("zone=a=b", "value: may contain letters"),
            ("zone= a", "value: may not start or end with a space"),
            (
                "berth.address=1.2.3.4",
                "name: \"berth.address\" is set by berth",
            ),
            (
                "ecs.os-type=windows",
                "name: \"ecs.os-type\" is set by berth",
            ),
        ];
        for (text, want) in cases {
            let got = parse_custom_attribute(text).unwrap_err().to_string();
            assert!(got.starts_with(want), "{text}: {got}");
        }
        let long = format!("zone={}", "a".repeat(129));
        assert!(parse_custom_attribute(&long).is_err());
    }

    #[test]
    fn architectures_are_spelled_as_ecs_spells_them() {
        assert_eq!(ecs_cpu_architecture("x86_64"), "x86_64");
        assert_eq!(ecs_cpu_architecture("aarch64"), "arm64");
    }
}
