//! `logConfiguration` on the process runtime: no log driver is applied there, so a
//! process's output is kept in berth's own log file and read back through the logs API
//! whatever the driver says, `none` included.

use crate::support::*;
use berth_runtime::process::{ProcessRuntime, ProcessRuntimeConfig};
use berth_runtime::Runtime;
use futures::StreamExt;
use serde_json::json;

#[tokio::test]
async fn process_output_is_kept_whatever_the_log_driver() {
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let rt = ProcessRuntime::new(ProcessRuntimeConfig {
        state_dir: dir.path().to_path_buf(),
        shim: vec![env!("CARGO_BIN_EXE_berth-runtime-shim").to_string()],
        dns_server: None,
    })
    .unwrap();
    let app = |name: &str, lc: serde_json::Value| {
        json!({
            "name": name, "image": "berth/whoami", "command": [whoami_str()],
            "portMappings": [{"containerPort": 8080}], "stopTimeout": 5,
            "logConfiguration": lc,
        })
    };
    let spec = spec(
        &task_id("prlogs"),
        json!([
            app("quiet", json!({"logDriver": "none"})),
            app(
                "sent",
                json!({"logDriver": "syslog", "options": {"syslog-address": "udp://127.0.0.1:514"}})
            ),
        ]),
    );
    let s = rt.start(&spec).await.unwrap();
    for idx in 0..2 {
        get_when_up(host_port(&s, idx), "/").await;
    }
    rt.stop(&spec.task_arn).await.unwrap();
    for name in ["quiet", "sent"] {
        let mut logs = rt.logs(&spec.task_arn, Some(name), false).await.unwrap();
        let mut text = Vec::new();
        while let Some(chunk) = logs.next().await {
            text.extend_from_slice(&chunk.unwrap());
        }
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("listening on 0.0.0.0:"), "{name}: {text}");
    }
    rt.remove(&spec.task_arn).await.unwrap();
}
