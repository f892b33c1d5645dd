//! A container's `logConfiguration`: which log drivers berth honours, what it refuses,
//! and the name of an `awslogs` stream as ECS names it.
//!
//! `none` is Docker's, not in botocore's enum; berth accepts it.
//!
//! Pure rules only: how Docker is told about a driver is berth-runtime's, and where the
//! lines end up (berth's own log store) is the runtime's logs modules'.

use crate::error::{Result, ValidationError};

use super::container::{LogConfiguration, LogDriver};
use super::field_support::refuse;

/// The `awslogs` option naming the log group; ECS requires it.
pub const AWSLOGS_GROUP: &str = "awslogs-group";
/// The `awslogs` option prefixing each stream name.
pub const AWSLOGS_STREAM_PREFIX: &str = "awslogs-stream-prefix";
/// The `awslogs` option naming the CloudWatch region; accepted, not applied.
pub const AWSLOGS_REGION: &str = "awslogs-region";

/// The refusal of a log driver, with [`super::field_support::UNSUPPORTED`]'s reason.
fn refuse_driver() -> ValidationError {
    refuse(
        "logConfiguration.logDriver",
        "LogConfiguration",
        "logDriver",
    )
}

/// Checks a container's `logConfiguration`; error fields start at `logConfiguration`.
pub(super) fn validate_log_configuration(lc: &LogConfiguration) -> Result<()> {
    let field = "logConfiguration";
    match lc.log_driver {
        LogDriver::Awsfirelens | LogDriver::Splunk => return Err(refuse_driver()),
        LogDriver::Awslogs => {
            let group = lc.options.get(AWSLOGS_GROUP).map(String::as_str);
            if group.is_none_or(str::is_empty) {
                return Err(ValidationError::new(
                    format!("{field}.options.{AWSLOGS_GROUP}"),
                    "is required with logDriver awslogs: the log group the streams go in",
                ));
            }
        }
        _ => {}
    }
    if !lc.secret_options.is_empty() {
        return Err(refuse(
            format!("{field}.secretOptions"),
            "LogConfiguration",
            "secretOptions",
        ));
    }
    Ok(())
}

/// The `awslogs` stream of container `container` in task `task_id`, as ECS names it:
/// `<awslogs-stream-prefix>/<container name>/<task id>` within the `awslogs-group`.
/// None unless the driver is `awslogs` with a stream prefix (without one ECS names the
/// stream after the Docker container id, which berth does not promise).
pub fn awslogs_stream_name(
    lc: &LogConfiguration,
    container: &str,
    task_id: &str,
) -> Option<String> {
    if lc.log_driver != LogDriver::Awslogs {
        return None;
    }
    let prefix = lc.options.get(AWSLOGS_STREAM_PREFIX)?;
    Some(format!("{prefix}/{container}/{task_id}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ecs::container::Secret;

    fn lc(driver: LogDriver, opts: &[(&str, &str)]) -> LogConfiguration {
        LogConfiguration {
            log_driver: driver,
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            secret_options: vec![],
        }
    }

    const F: &str = "logConfiguration";

    #[test]
    fn docker_drivers_and_json_file_pass() {
        for d in [
            LogDriver::JsonFile,
            LogDriver::Syslog,
            LogDriver::Journald,
            LogDriver::Gelf,
            LogDriver::Fluentd,
            LogDriver::None,
        ] {
            validate_log_configuration(&lc(d, &[("tag", "x")])).unwrap();
        }
    }

    #[test]
    fn awslogs_needs_a_group_and_accepts_a_region() {
        let e = validate_log_configuration(&lc(LogDriver::Awslogs, &[])).unwrap_err();
        assert_eq!(e.field, format!("{F}.options.awslogs-group"));
        let e = validate_log_configuration(&lc(LogDriver::Awslogs, &[(AWSLOGS_GROUP, "")]))
            .unwrap_err();
        assert!(e.message.contains("required"), "{e}");
        validate_log_configuration(&lc(
            LogDriver::Awslogs,
            &[(AWSLOGS_GROUP, "/ecs/web"), (AWSLOGS_REGION, "us-east-1")],
        ))
        .unwrap();
    }

    #[test]
    fn firelens_splunk_and_secret_options_are_refused_naming_the_field() {
        let e = validate_log_configuration(&lc(LogDriver::Awsfirelens, &[])).unwrap_err();
        assert_eq!(e.field, format!("{F}.logDriver"));
        assert!(e.message.contains("FireLens"), "{e}");
        let e = validate_log_configuration(&lc(LogDriver::Splunk, &[])).unwrap_err();
        assert_eq!(e.field, format!("{F}.logDriver"));
        assert!(e.message.contains("json-file"), "{e}");
        let mut with_secret = lc(LogDriver::JsonFile, &[]);
        with_secret.secret_options.push(Secret {
            name: "token".into(),
            value_from: "arn:aws:ssm:us-east-1:1:parameter/t".into(),
        });
        let e = validate_log_configuration(&with_secret).unwrap_err();
        assert_eq!(e.field, format!("{F}.secretOptions"));
        assert!(e.message.contains("environment only"), "{e}");
    }

    #[test]
    fn awslogs_stream_is_prefix_container_task() {
        let l = lc(
            LogDriver::Awslogs,
            &[(AWSLOGS_GROUP, "/ecs/web"), (AWSLOGS_STREAM_PREFIX, "ecs")],
        );
        assert_eq!(
            awslogs_stream_name(&l, "httpd", "0f3a").as_deref(),
            Some("ecs/httpd/0f3a")
        );
        let no_prefix = lc(LogDriver::Awslogs, &[(AWSLOGS_GROUP, "/ecs/web")]);
        assert_eq!(awslogs_stream_name(&no_prefix, "httpd", "0f3a"), None);
        assert_eq!(
            awslogs_stream_name(
                &lc(LogDriver::JsonFile, &[(AWSLOGS_STREAM_PREFIX, "e")]),
                "h",
                "t"
            ),
            None
        );
    }
}
