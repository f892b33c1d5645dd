//! `berth iam ...`: users, roles, their inline policies and users' access keys, through
//! `/v1/iam`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client::{print_table, s, BadConfig, Client};

#[derive(Subcommand)]
pub enum IamCommand {
    /// Create a user (it can do nothing until a policy allows it).
    CreateUser { name: String },
    /// Delete a user (its access keys first).
    DeleteUser { name: String },
    /// List the users and their policies' names.
    ListUsers,
    /// Show a user with its policy documents.
    GetUser { name: String },
    /// Create an access key for a user; its secret is printed this once.
    CreateAccessKey { name: String },
    /// List a user's access keys (never their secrets).
    ListAccessKeys { name: String },
    /// Delete one of a user's access keys.
    DeleteAccessKey { name: String, access_key_id: String },
    /// Set a user's inline policy from an IAM policy document (JSON).
    PutUserPolicy {
        name: String,
        policy_name: String,
        /// The policy document: a JSON file (`file://` prefix allowed, as the AWS CLI's).
        #[arg(long)]
        policy_document: PathBuf,
    },
    /// Remove a user's inline policy.
    DeleteUserPolicy { name: String, policy_name: String },
    /// Create a role: tasks whose definition names it as `taskRoleArn` get its
    /// credentials.
    CreateRole { name: String },
    /// Set a role's inline policy from an IAM policy document (JSON).
    PutRolePolicy {
        name: String,
        policy_name: String,
        /// The policy document: a JSON file (`file://` prefix allowed, as the AWS CLI's).
        #[arg(long)]
        policy_document: PathBuf,
    },
}

fn read_policy(path: &std::path::Path) -> Result<Value> {
    let text = path.to_string_lossy();
    let path = PathBuf::from(text.strip_prefix("file://").unwrap_or(&text));
    let doc =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&doc).map_err(|e| {
        BadConfig(format!(
            "{}: not a JSON policy document: {e}",
            path.display()
        ))
        .into()
    })
}

fn policy_names(user: &Value) -> String {
    user["Policies"]
        .as_object()
        .map(|p| p.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

pub async fn run(c: &Client, cmd: &IamCommand, json_out: bool) -> Result<()> {
    let out = match cmd {
        IamCommand::CreateUser { name } => {
            c.post("/v1/iam/users", &json!({ "userName": name }))
                .await?
        }
        IamCommand::DeleteUser { name } => c.delete(&format!("/v1/iam/users/{name}")).await?,
        IamCommand::GetUser { name } => c.get(&format!("/v1/iam/users/{name}")).await?,
        IamCommand::ListUsers => {
            let users = c.get("/v1/iam/users").await?;
            if !json_out {
                let rows: Vec<Vec<String>> = users["Users"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| vec![s(&u["UserName"]), s(&u["Arn"]), policy_names(u)])
                    .collect();
                print_table(&["NAME", "ARN", "POLICIES"], &rows);
                return Ok(());
            }
            users
        }
        IamCommand::CreateAccessKey { name } => {
            let key = c
                .post(&format!("/v1/iam/users/{name}/access-keys"), &json!({}))
                .await?;
            if !json_out {
                let k = &key["AccessKey"];
                println!("AccessKeyId      {}", s(&k["AccessKeyId"]));
                println!("SecretAccessKey  {}", s(&k["SecretAccessKey"]));
                eprintln!("the secret is shown this once: keep it now (berth keeps it sealed)");
                return Ok(());
            }
            key
        }
        IamCommand::ListAccessKeys { name } => {
            let keys = c.get(&format!("/v1/iam/users/{name}/access-keys")).await?;
            if !json_out {
                let rows: Vec<Vec<String>> = keys["AccessKeyMetadata"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| vec![s(&k["AccessKeyId"]), s(&k["Status"])])
                    .collect();
                print_table(&["ACCESS KEY ID", "STATUS"], &rows);
                return Ok(());
            }
            keys
        }
        IamCommand::DeleteAccessKey {
            name,
            access_key_id,
        } => {
            c.delete(&format!("/v1/iam/users/{name}/access-keys/{access_key_id}"))
                .await?
        }
        IamCommand::PutUserPolicy {
            name,
            policy_name,
            policy_document,
        } => {
            let doc = read_policy(policy_document)?;
            c.put(
                &format!("/v1/iam/users/{name}/policies/{policy_name}"),
                &doc,
            )
            .await?
        }
        IamCommand::DeleteUserPolicy { name, policy_name } => {
            c.delete(&format!("/v1/iam/users/{name}/policies/{policy_name}"))
                .await?
        }
        IamCommand::CreateRole { name } => {
            c.post("/v1/iam/roles", &json!({ "roleName": name }))
                .await?
        }
        IamCommand::PutRolePolicy {
            name,
            policy_name,
            policy_document,
        } => {
            let doc = read_policy(policy_document)?;
            c.put(
                &format!("/v1/iam/roles/{name}/policies/{policy_name}"),
                &doc,
            )
            .await?
        }
    };
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(deleted) = out.get("deleted") {
        println!("deleted {}", s(deleted));
    } else {
        let name = out.get("RoleName").unwrap_or(&out["UserName"]);
        println!("{} {}", s(name), s(&out["Arn"]));
    }
    Ok(())
}
