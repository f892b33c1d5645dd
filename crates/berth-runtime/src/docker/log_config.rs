//! A container definition's `logConfiguration` as Docker's `HostConfig.LogConfig`, a
//! pure function.
//!
//! `json-file` and the Docker drivers `syslog`, `fluentd`, `gelf`, `journald` and `none`
//! go to Docker as given, with their `options`. `awslogs` is kept in berth's own log
//! store: the container logs with `json-file` (Docker's default options, the `awslogs-*`
//! options dropped since Docker's json-file would refuse them), so `berth logs` and the
//! API read it like any other; its stream name is
//! [`berth_model::ecs::log_configuration::awslogs_stream_name`]. Only json-file (and
//! journald) output can be read back through the engine: `none` and the network drivers
//! leave nothing for `berth logs`.
//!
//! Drivers berth refuses (`awsfirelens`, `splunk`) and `secretOptions` never get here:
//! task definition validation refuses them.

use berth_model::ecs::{LogConfiguration, LogDriver};
use bollard::models::HostConfigLogConfig;

/// Docker's name of a log driver berth passes through; `awslogs` becomes `json-file`.
fn docker_driver(driver: LogDriver) -> &'static str {
    match driver {
        LogDriver::JsonFile | LogDriver::Awslogs => "json-file",
        LogDriver::Syslog => "syslog",
        LogDriver::Journald => "journald",
        LogDriver::Gelf => "gelf",
        LogDriver::Fluentd => "fluentd",
        LogDriver::None => "none",
        // Refused by validation; named as ECS names them should one slip through, so
        // Docker's own error names the driver.
        LogDriver::Splunk => "splunk",
        LogDriver::Awsfirelens => "awsfirelens",
    }
}

/// The `LogConfig` of a container with `lc`; None (the engine's default) without one.
pub(crate) fn docker_log_config(lc: Option<&LogConfiguration>) -> Option<HostConfigLogConfig> {
    let lc = lc?;
    let config = match lc.log_driver {
        LogDriver::Awslogs => None,
        _ if lc.options.is_empty() => None,
        _ => Some(
            lc.options
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
    };
    Some(HostConfigLogConfig {
        typ: Some(docker_driver(lc.log_driver).to_string()),
        config,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

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

    fn typ_and_config(c: &HostConfigLogConfig) -> (&str, Vec<(String, String)>) {
        let mut config: Vec<_> = c
            .config
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        config.sort();
        (c.typ.as_deref().unwrap(), config)
    }

    #[test]
    fn without_a_log_configuration_the_engine_default_applies() {
        assert_eq!(docker_log_config(None), None);
    }

    #[test]
    fn docker_drivers_pass_through_with_their_options() {
        for (driver, name, opts) in [
            (
                LogDriver::JsonFile,
                "json-file",
                vec![("max-size", "10m"), ("max-file", "3")],
            ),
            (
                LogDriver::Syslog,
                "syslog",
                vec![("syslog-address", "udp://127.0.0.1:514")],
            ),
            (
                LogDriver::Fluentd,
                "fluentd",
                vec![("fluentd-address", "127.0.0.1:24224"), ("tag", "web")],
            ),
            (
                LogDriver::Gelf,
                "gelf",
                vec![("gelf-address", "udp://127.0.0.1:12201")],
            ),
            (LogDriver::Journald, "journald", vec![("tag", "web")]),
        ] {
            let c = docker_log_config(Some(&lc(driver, &opts))).unwrap();
            let mut want: Vec<_> = opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            want.sort();
            assert_eq!(typ_and_config(&c), (name, want), "{driver:?}");
        }
    }

    #[test]
    fn none_turns_logging_off_and_options_may_be_absent() {
        let c = docker_log_config(Some(&lc(LogDriver::None, &[]))).unwrap();
        assert_eq!(typ_and_config(&c), ("none", vec![]));
        let c = docker_log_config(Some(&lc(LogDriver::JsonFile, &[]))).unwrap();
        assert_eq!(typ_and_config(&c), ("json-file", vec![]));
        assert_eq!(c.config, None);
    }

    #[test]
    fn awslogs_logs_with_json_file_and_drops_the_awslogs_options() {
        let c = docker_log_config(Some(&lc(
            LogDriver::Awslogs,
            &[
                ("awslogs-group", "/ecs/web"),
                ("awslogs-region", "us-east-1"),
                ("awslogs-stream-prefix", "ecs"),
            ],
        )))
        .unwrap();
        assert_eq!(c.typ.as_deref(), Some("json-file"));
        assert_eq!(c.config, None);
    }
}
