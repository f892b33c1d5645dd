//! `berth secrets ...`: the secret store, through `/v1/secrets`. A value is read from
//! `--value`, a file or stdin, and printed only by `get`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use crate::client::{print_table, s, BadConfig, Client};

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Create a secret or replace its value: from --value, --from-file, or else stdin
    /// (one trailing newline dropped).
    Put {
        name: String,
        /// The value itself (visible in the shell's history and the process list:
        /// prefer --from-file or stdin).
        #[arg(long, conflicts_with = "from_file")]
        value: Option<String>,
        /// A file holding the value, as it is.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
    },
    /// Print a secret's value.
    Get { name: String },
    /// List the secrets (names and ARNs, never values).
    List,
    /// Delete a secret, at once.
    Delete { name: String },
}

fn read_value(value: &Option<String>, from_file: &Option<PathBuf>) -> Result<String> {
    if let Some(v) = value {
        return Ok(v.clone());
    }
    if let Some(path) = from_file {
        return std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("reading the value from stdin")?;
    let text = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_string();
    if text.is_empty() {
        return Err(BadConfig(
            "secrets put: no value: give --value, --from-file or the value on stdin".into(),
        )
        .into());
    }
    Ok(text)
}

pub async fn run(c: &Client, cmd: &SecretsCommand, json_out: bool) -> Result<()> {
    let out = match cmd {
        SecretsCommand::Put {
            name,
            value,
            from_file,
        } => {
            let v = read_value(value, from_file)?;
            let out = c
                .put(
                    &format!("/v1/secrets/{name}"),
                    &json!({ "secretString": v }),
                )
                .await?;
            if !json_out {
                let verb = if out["Created"] == true {
                    "created"
                } else {
                    "updated"
                };
                println!("{verb} {}", s(&out["ARN"]));
                return Ok(());
            }
            out
        }
        SecretsCommand::Get { name } => {
            let out = c.get(&format!("/v1/secrets/{name}")).await?;
            if !json_out {
                println!("{}", s(&out["SecretString"]));
                return Ok(());
            }
            out
        }
        SecretsCommand::List => {
            let out = c.get("/v1/secrets").await?;
            if !json_out {
                let rows: Vec<Vec<String>> = out["SecretList"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| vec![s(&x["Name"]), s(&x["ARN"])])
                    .collect();
                print_table(&["NAME", "ARN"], &rows);
                return Ok(());
            }
            out
        }
        SecretsCommand::Delete { name } => {
            let out = c.delete(&format!("/v1/secrets/{name}")).await?;
            if !json_out {
                println!("deleted {}", s(&out["ARN"]));
                return Ok(());
            }
            out
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
