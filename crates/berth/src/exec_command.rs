//! `berth exec <task> [--container NAME] -- CMD ARGS...`: runs a command in a running
//! task's container through the API's exec endpoint, prints its stdout and stderr as they
//! were captured, and exits with the command's exit code.
//!
//! What it does not do: interactive sessions (no stdin, no terminal); the command runs
//! to its end (or its timeout) before anything is printed.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::client::Client;

/// What `berth exec` was asked.
#[derive(clap::Args)]
pub struct ExecArgs {
    /// The task's id (a unique prefix is enough) or ARN.
    pub task: String,
    #[arg(short = 'c', long, default_value = "default")]
    pub cluster: String,
    /// The container; default the task's first essential container.
    #[arg(long)]
    pub container: Option<String>,
    /// Seconds the command may run before it is killed (1 to 3600).
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, num_args = 1..)]
    pub command: Vec<String>,
}

/// Runs the exec and prints its output (with `json`, the API's answer as is); the exit
/// code is the command's (its low 8 bits, as a shell reports it).
pub async fn run(client: &Client, args: &ExecArgs, json: bool) -> Result<ExitCode> {
    let body = json!({
        "container": args.container,
        "command": args.command,
        "timeoutSeconds": args.timeout,
        "caller": std::env::var("USER").ok(),
    });
    let out = client
        .post(
            &format!("/v1/clusters/{}/tasks/{}/exec", args.cluster, args.task),
            &body,
        )
        .await?;
    let code = out["exitCode"]
        .as_i64()
        .context("the API's exec answer has no exitCode")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_output(&out)?;
    }
    Ok(ExitCode::from(exit_status_byte(code)))
}

fn print_output(out: &Value) -> Result<()> {
    let text = |k: &str| out[k].as_str().unwrap_or("").to_string();
    let mut stdout = std::io::stdout();
    stdout.write_all(text("stdout").as_bytes())?;
    stdout.flush()?;
    let mut stderr = std::io::stderr();
    stderr.write_all(text("stderr").as_bytes())?;
    if out["truncated"].as_bool() == Some(true) {
        writeln!(stderr, "berth exec: output cut at the node's limit")?;
    }
    Ok(())
}

/// An exit code as a process exit status: 0..=255 as is, others their low 8 bits.
fn exit_status_byte(code: i64) -> u8 {
    (code & 0xff) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_become_their_low_byte() {
        assert_eq!(exit_status_byte(0), 0);
        assert_eq!(exit_status_byte(7), 7);
        assert_eq!(exit_status_byte(255), 255);
        assert_eq!(exit_status_byte(256), 0);
        assert_eq!(exit_status_byte(-1), 255);
    }
}
