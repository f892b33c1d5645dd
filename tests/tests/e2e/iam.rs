//! End-to-end tests of access control with the API's authentication on (berth's
//! default): the CLI signs with the admin's first credentials and applies the
//! quickstart; unsigned, wrongly signed, unknown-key, skewed-clock and denied requests
//! get AWS's errors and change nothing; a user allowed only `ecs:Describe*` and
//! `ecs:List*` can list and describe and cannot update; no secret reaches the server's
//! log; off loopback the server refuses to serve without TLS, and serves the API over
//! TLS from its own authority, which the CLI trusts.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use berth_iam::sigv4::{signing_headers, SigningParams};
use berth_testkit::{bin, quickstart, wait_until, Server};
use serde_json::{json, Value};

struct Creds {
    id: String,
    secret: String,
}

fn admin_creds(data_dir: &Path) -> Creds {
    let text = std::fs::read_to_string(data_dir.join("admin-credentials")).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            .unwrap()
    };
    Creds {
        id: field("aws_access_key_id"),
        secret: field("aws_secret_access_key"),
    }
}

/// The CLI against `server`, signing with the data directory's admin credentials, or
/// with `as_user` (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`) when given.
fn cli(server: &Server, as_user: Option<&Creds>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("berth"));
    cmd.args(args)
        .env("BERTH_ENDPOINT", &server.api)
        .env("BERTH_DATA_DIR", &server.data_dir)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("BERTH_CREDENTIALS");
    if let Some(c) = as_user {
        cmd.env("AWS_ACCESS_KEY_ID", &c.id)
            .env("AWS_SECRET_ACCESS_KEY", &c.secret);
    }
    cmd.output().expect("running the berth CLI")
}

fn ok_json(out: Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// One request signed by hand (or not at all), as a client other than the CLI would
/// send it; returns the status, the `x-amzn-ErrorType` header and the JSON body.
async fn request(
    server: &Server,
    method: &str,
    path: &str,
    body: &[u8],
    signer: Option<(&str, &str, i64)>,
) -> (u16, Option<String>, Value) {
    let host = server.api.trim_start_matches("http://").to_string();
    let mut req = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", server.api))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some((id, secret, time)) = signer {
        let signed = signing_headers(
            method,
            path,
            "",
            &host,
            &[],
            body,
            &SigningParams {
                access_key_id: id,
                secret_access_key: secret,
                region: "local",
                service: "ecs",
                time,
            },
        );
        for (n, v) in signed {
            req = req.header(n, v);
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("x-amzn-ErrorType")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, kind, body)
}

async fn desired_count(server: &Server, admin: &Creds) -> i64 {
    let (status, _, svc) = request(
        server,
        "GET",
        "/v1/clusters/default/services/whoami",
        b"",
        Some((&admin.id, &admin.secret, now())),
    )
    .await;
    assert_eq!(status, 200, "{svc}");
    svc["desiredCount"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_cli_works_and_every_refusal_is_aws_shaped_and_changes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let server = Server::launch_guarded(&data, None, "process", &[]).await?;
    let admin = admin_creds(&data);
    assert!(admin.id.starts_with("AKIA") && admin.secret.len() == 40);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("admin-credentials"))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The CLI signs with the admin's credentials: the quickstart applies and runs.
    let stack = quickstart(dir.path(), 1);
    let out = cli(&server, None, &["apply", "-f", &stack.to_string_lossy()]);
    assert!(
        out.status.success(),
        "apply: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    wait_until(
        "the quickstart's task to run",
        Duration::from_secs(60),
        || async {
            let tasks = ok_json(
                cli(&server, None, &["get", "tasks", "-o", "json"]),
                "get tasks",
            );
            tasks
                .as_array()?
                .iter()
                .any(|t| t["lastStatus"] == "RUNNING")
                .then_some(())
        },
    )
    .await
    .with_context(|| server.log())?;
    assert_eq!(desired_count(&server, &admin).await, 1);

    // Refused requests, each trying to set the desired count to 3.
    let path = "/v1/clusters/default/services/whoami";
    let (_, _, mut svc) = request(
        &server,
        "GET",
        path,
        b"",
        Some((&admin.id, &admin.secret, now())),
    )
    .await;
    svc["desiredCount"] = json!(3);
    let body = serde_json::to_vec(&svc)?;
    let (status, kind, err) = request(&server, "PUT", path, &body, None).await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("MissingAuthenticationToken"))
    );
    assert_eq!(
        err,
        json!({"__type": "MissingAuthenticationToken", "message": "Missing Authentication Token"})
    );
    let (status, _, err) = request(
        &server,
        "PUT",
        path,
        &body,
        Some((&admin.id, "wrong-secret", now())),
    )
    .await;
    assert_eq!(
        (status, err["__type"].as_str()),
        (403, Some("SignatureDoesNotMatch"))
    );
    assert!(err["message"]
        .as_str()
        .unwrap()
        .starts_with("The request signature we calculated does not match"));
    let (status, _, err) = request(
        &server,
        "PUT",
        path,
        &body,
        Some(("AKIAAAAAAAAAAAAAAAAA", &admin.secret, now())),
    )
    .await;
    assert_eq!(
        (status, err["__type"].as_str()),
        (403, Some("InvalidClientTokenId"))
    );
    assert_eq!(
        err["message"],
        "The security token included in the request is invalid."
    );
    let (status, _, err) = request(
        &server,
        "PUT",
        path,
        &body,
        Some((&admin.id, &admin.secret, now() - 600)),
    )
    .await;
    assert_eq!(
        (status, err["__type"].as_str()),
        (403, Some("SignatureDoesNotMatch"))
    );
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired: "),
        "{err}"
    );

    // A user allowed to describe and list only.
    let policy = dir.path().join("read-only.json");
    std::fs::write(
        &policy,
        r#"{"Version": "2012-10-17", "Statement": [{"Sid": "ReadEcs", "Effect": "Allow", "Action": ["ecs:Describe*", "ecs:List*"], "Resource": "*"}]}"#,
    )?;
    ok_json(
        cli(
            &server,
            None,
            &["iam", "create-user", "reader", "-o", "json"],
        ),
        "create-user",
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecs", "Resource": "*"}]}"#,
    )?;
    let out = cli(
        &server,
        None,
        &[
            "iam",
            "put-user-policy",
            "reader",
            "read",
            "--policy-document",
            &bad.to_string_lossy(),
        ],
    );
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MalformedPolicyDocument") && stderr.contains("Statement[0].Action[0]"),
        "{stderr}"
    );
    ok_json(
        cli(
            &server,
            None,
            &[
                "iam",
                "put-user-policy",
                "reader",
                "read",
                "--policy-document",
                &policy.to_string_lossy(),
                "-o",
                "json",
            ],
        ),
        "put-user-policy",
    );
    let key = ok_json(
        cli(
            &server,
            None,
            &["iam", "create-access-key", "reader", "-o", "json"],
        ),
        "create-access-key",
    );
    let reader = Creds {
        id: key["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_string(),
    };
    let users = ok_json(
        cli(&server, None, &["iam", "list-users", "-o", "json"]),
        "list-users",
    );
    let names: Vec<&str> = users["Users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["UserName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "reader"]);

    let services = ok_json(
        cli(&server, Some(&reader), &["get", "services", "-o", "json"]),
        "reader: get services",
    );
    assert!(services.to_string().contains("whoami"), "{services}");
    let out = cli(&server, Some(&reader), &["describe", "service", "whoami"]);
    assert!(
        out.status.success(),
        "reader: describe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, kind, err) = request(
        &server,
        "PUT",
        path,
        &body,
        Some((&reader.id, &reader.secret, now())),
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("AccessDeniedException"))
    );
    assert_eq!(
        err["message"],
        format!(
            "User: arn:berth:iam::000000000000:user/reader is not authorized to perform: ecs:CreateService on resource: arn:berth:ecs:local:000000000000:service/default/whoami because no identity-based policy allows the ecs:CreateService action"
        )
    );
    let scaled = quickstart(dir.path(), 3);
    let out = cli(
        &server,
        Some(&reader),
        &["apply", "-f", &scaled.to_string_lossy()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AccessDeniedException"));
    let out = cli(&server, Some(&reader), &["iam", "create-user", "mallory"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("iam:CreateUser"));

    // Nothing refused changed anything.
    assert_eq!(desired_count(&server, &admin).await, 1);
    let users = ok_json(
        cli(&server, None, &["iam", "list-users", "-o", "json"]),
        "list-users",
    );
    assert_eq!(users["Users"].as_array().unwrap().len(), 2);

    // A deleted key no longer signs.
    ok_json(
        cli(
            &server,
            None,
            &[
                "iam",
                "delete-access-key",
                "reader",
                &reader.id,
                "-o",
                "json",
            ],
        ),
        "delete-access-key",
    );
    let out = cli(&server, Some(&reader), &["get", "services"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidClientTokenId"));

    // No secret in the server's log.
    let log = server.log();
    assert!(log.contains("request refused"), "refusals are logged");
    assert!(
        !log.contains(&admin.secret),
        "the admin's secret is in the log"
    );
    assert!(
        !log.contains(&reader.secret),
        "the reader's secret is in the log"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_loopback_the_api_needs_tls_and_insecure_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for flags in [
        vec!["--api-addr", "0.0.0.0:0"],
        vec![
            "--api-addr",
            "0.0.0.0:0",
            "--insecure-loopback",
            "--tls-self-signed",
        ],
    ] {
        let out = Command::new(bin("berth"))
            .arg("server")
            .args(&flags)
            .env("BERTH_DATA_DIR", dir.path())
            .output()?;
        assert_eq!(out.status.code(), Some(64), "{flags:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("needs TLS there")
                || stderr.contains("--insecure-loopback: allowed only"),
            "{stderr}"
        );
        assert!(!dir.path().join("berth.redb").exists(), "nothing started");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_tls_from_its_own_authority() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let server =
        Server::launch_guarded(&data, None, "process", &["--tls-self-signed".to_string()]).await?;
    assert!(
        server.api.starts_with("https://127.0.0.1:"),
        "{}",
        server.api
    );
    let addr = server.api.trim_start_matches("https://").to_string();
    let ca = std::fs::read(data.join("api-tls/ca.pem"))?;
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(&addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    tls.write_all(
        format!("GET /v1/clusters HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), tls.read_to_string(&mut answer)).await??;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("MissingAuthenticationToken"), "{answer}");

    // The CLI trusts the data directory's API authority and signs as the admin.
    let clusters = ok_json(
        cli(&server, None, &["get", "clusters", "-o", "json"]),
        "get clusters over TLS",
    );
    assert_eq!(clusters[0]["clusterName"], "default", "{clusters}");
    // Another authority is not trusted.
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, include_str!("iam_other_ca.pem"))?;
    let out = cli(
        &server,
        None,
        &["get", "clusters", "--ca-cert", &other.to_string_lossy()],
    );
    assert!(
        !out.status.success(),
        "a certificate of another authority was accepted"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_its_upgraded_session_pass_the_guard_when_signed() -> Result<()> {
    use std::io::Write;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("server");
    let server = Server::launch_guarded(&data, None, "process", &[]).await?;
    let base = std::fs::read_to_string(quickstart(dir.path(), 1))?;
    let text = base.replace(
        "    desiredCount: 1\n",
        "    desiredCount: 1\n    enableExecuteCommand: true\n",
    );
    assert!(text.contains("enableExecuteCommand: true"));
    let stack = dir.path().join("exec.yaml");
    std::fs::write(&stack, text)?;
    let out = cli(&server, None, &["apply", "-f", &stack.to_string_lossy()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = wait_until("the task to run", Duration::from_secs(60), || async {
        let tasks = ok_json(
            cli(&server, None, &["get", "tasks", "-o", "json"]),
            "get tasks",
        );
        tasks
            .as_array()?
            .iter()
            .find(|t| t["lastStatus"] == "RUNNING")
            .map(|t| {
                t["taskArn"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
    })
    .await
    .with_context(|| server.log())?;

    let out = cli(&server, None, &["exec", &task, "--", "echo", "signed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "signed");

    let mut child = Command::new(bin("berth"))
        .args(["exec", "-i", &task, "--", "cat"])
        .env("BERTH_ENDPOINT", &server.api)
        .env("BERTH_DATA_DIR", &server.data_dir)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through the guard\n")?;
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "through the guard"
    );

    // Unsigned, the same session is refused before the upgrade.
    let (status, kind, _) = request(
        &server,
        "POST",
        &format!("/v1/clusters/default/tasks/{task}/exec"),
        br#"{"command": ["echo", "x"]}"#,
        None,
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (403, Some("MissingAuthenticationToken"))
    );
    Ok(())
}
