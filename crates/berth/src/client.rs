//! The CLI's client side: `apply`, `get` (with `get endpoints <service>`), `describe`,
//! `delete`, `stop`, `logs`, talking
//! to a server's `/v1` API; tables for people and `-o json` for scripts. The autoscaling
//! kinds are named here ([`KINDS`], [`normalize_kind`]) and listed, described and
//! deleted by `autoscaling_commands`.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use berth_model::ecs::{Deployment, DeploymentStatus};
use berth_model::stack::Stack;
use futures::StreamExt;
use serde_json::Value;

use rustls_pki_types::pem::PemObject;

use crate::iam_credentials::Credentials;

/// A bad stack file: the binary exits with 64 on it.
#[derive(Debug)]
pub struct BadConfig(pub String);

impl std::fmt::Display for BadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadConfig {}

/// Reads, parses and validates a stack file.
pub fn read_stack(path: &Path) -> Result<Stack> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let stack =
        Stack::from_yaml(&text).map_err(|e| BadConfig(format!("{}: {e}", path.display())))?;
    stack
        .validate()
        .map_err(|e| BadConfig(format!("{}: {e}", path.display())))?;
    Ok(stack)
}

pub struct Client {
    pub endpoint: String,
    http: reqwest::Client,
    /// Signs every request (SigV4) when set.
    credentials: Option<Credentials>,
}

impl Client {
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            credentials: None,
        }
    }

    /// The client for an `https://` endpoint, trusting the certificates of `ca_pem`
    /// (else the data directory's API authority, `<BERTH_DATA_DIR>/api-tls/ca.pem`). A
    /// plain `http://` endpoint is left as it is.
    pub fn with_tls_roots(mut self, ca_pem: Option<&Path>) -> Result<Self> {
        if !self.endpoint.starts_with("https://") {
            return Ok(self);
        }
        let default = std::path::PathBuf::from(
            std::env::var("BERTH_DATA_DIR").unwrap_or_else(|_| ".berth".into()),
        )
        .join("api-tls/ca.pem");
        let path = match ca_pem {
            Some(p) => p.to_path_buf(),
            None if default.exists() => default,
            None => bail!(
                "{} is https: name the certificate authority to trust with --ca-cert FILE (or BERTH_CA_CERT)",
                self.endpoint
            ),
        };
        let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| anyhow!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("the client's TLS configuration")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        self.http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .context("the https client")?;
        Ok(self)
    }

    /// The client signing its requests with `credentials`.
    pub fn with_credentials(mut self, credentials: Option<Credentials>) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sends `req`, signed when the client has credentials; any answer is `Ok`.
    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let mut request = req.build().context("building the request")?;
        if let Some(c) = &self.credentials {
            sign_request(&mut request, c)?;
        }
        self.http.execute(request).await.with_context(|| {
            format!(
                "cannot reach the berth API at {} (is `berth server` running?)",
                self.endpoint
            )
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = self.exchange(req).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(api_error(resp).await)
    }

    /// POSTs `body` to `path` asking to upgrade the connection to `protocol`; returns
    /// the upgraded connection, or the API's refusal as [`Client::post`] does.
    pub async fn upgrade(
        &self,
        path: &str,
        body: &Value,
        protocol: &str,
    ) -> Result<reqwest::Upgraded> {
        let url = format!("{}{path}", self.endpoint);
        let req = self
            .http
            .post(url)
            .header(reqwest::header::CONNECTION, "Upgrade")
            .header(reqwest::header::UPGRADE, protocol)
            .json(body);
        let resp = self.exchange(req).await?;
        if resp.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            return Err(api_error(resp).await);
        }
        resp.upgrade()
            .await
            .with_context(|| format!("the berth API did not switch to {protocol}"))
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.endpoint);
        Ok(self.send(self.http.get(url)).await?.json().await?)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let url = format!("{}{path}", self.endpoint);
        Ok(self
            .send(self.http.post(url).json(body))
            .await?
            .json()
            .await?)
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value> {
        let url = format!("{}{path}", self.endpoint);
        Ok(self
            .send(self.http.put(url).json(body))
            .await?
            .json()
            .await?)
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        let url = format!("{}{path}", self.endpoint);
        Ok(self.send(self.http.delete(url)).await?.json().await?)
    }

    pub async fn stream_to_stdout(&self, path: &str) -> Result<()> {
        use std::io::Write;
        let url = format!("{}{path}", self.endpoint);
        let resp = self.send(self.http.get(url)).await?;
        let mut body = resp.bytes_stream();
        let mut out = std::io::stdout();
        while let Some(chunk) = body.next().await {
            out.write_all(&chunk?)?;
            out.flush()?;
        }
        Ok(())
    }
}

/// Adds SigV4's headers to `request` (signed: host, the payload hash and the time).
fn sign_request(request: &mut reqwest::Request, c: &Credentials) -> Result<()> {
    let url = request.url();
    let host = url.host_str().unwrap_or_default();
    let host = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default();
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let token: Vec<(&str, &str)> = c
        .session_token
        .as_deref()
        .map(|t| ("x-amz-security-token", t))
        .into_iter()
        .collect();
    let signed = berth_iam::sigv4::signing_headers(
        request.method().as_str(),
        url.path(),
        url.query().unwrap_or(""),
        &host,
        &token,
        body,
        &berth_iam::sigv4::SigningParams {
            access_key_id: &c.access_key_id,
            secret_access_key: &c.secret_access_key,
            region: berth_model::arn::REGION,
            service: "ecs",
            time,
        },
    );
    let token = token.iter().map(|(n, v)| (*n, v.to_string()));
    for (name, value) in signed.into_iter().chain(token) {
        let value = reqwest::header::HeaderValue::from_str(&value)
            .with_context(|| format!("the {name} header"))?;
        request.headers_mut().insert(name, value);
    }
    Ok(())
}

/// The API's error answer `resp` as an error: a refused parameter is a [`BadConfig`].
async fn api_error(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let kind = body["__type"].as_str().unwrap_or("Error");
    let msg = body["message"].as_str().unwrap_or("");
    if matches!(
        kind,
        "InvalidParameterException" | "MalformedPolicyDocument" | "ValidationError"
    ) {
        return BadConfig(format!("{kind}: {msg}")).into();
    }
    anyhow!("{kind} ({status}): {msg}")
}

/// Prints rows as an aligned table.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    for l in table_lines(headers, rows) {
        println!("{l}");
    }
}

/// The lines of an aligned table.
fn table_lines(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    for r in rows {
        out.push(line(r.clone()));
    }
    out
}

pub(crate) fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    }
}

fn last(v: &Value) -> String {
    s(v).rsplit('/').next().unwrap_or("-").to_string()
}

/// Short task ids, as ECS consoles show them.
fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

pub const KINDS: &[&str] = &[
    "clusters",
    "services",
    "tasks",
    "task-definitions",
    "target-groups",
    "targets",
    "load-balancers",
    "container-instances",
    "namespaces",
    "endpoints",
    "scalable-targets",
    "scaling-policies",
    "scheduled-actions",
    "scaling-activities",
];

pub fn normalize_kind(kind: &str) -> Result<&'static str> {
    let k = kind.trim_end_matches('s');
    for full in KINDS {
        if full.trim_end_matches('s') == k {
            return Ok(full);
        }
    }
    match k {
        "svc" => Ok("services"),
        "td" | "taskdef" => Ok("task-definitions"),
        "tg" => Ok("target-groups"),
        "lb" => Ok("load-balancers"),
        "instance" | "ci" => Ok("container-instances"),
        "scaling-policy" | "scaling-policie" | "policy" | "policie" => Ok("scaling-policies"),
        "scaling-activity" | "scaling-activitie" | "activity" | "activitie" => {
            Ok("scaling-activities")
        }
        _ => bail!("unknown kind {kind:?}; one of: {}", KINDS.join(", ")),
    }
}

/// An instance's remaining `name` resource (CPU units, MiB), as the API reports it.
fn remaining(instance: &Value, name: &str) -> String {
    instance["remainingResources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == name))
        .map(|r| r["integerValue"].to_string())
        .unwrap_or_default()
}

pub async fn get(client: &Client, kind: &str, cluster: Option<&str>, json: bool) -> Result<()> {
    let kind = normalize_kind(kind)?;
    let q = cluster.map(|c| format!("?cluster={c}")).unwrap_or_default();
    let data = match kind {
        "clusters" => client.get("/v1/clusters").await?,
        "services" => client.get(&format!("/v1/services{q}")).await?,
        "tasks" => client.get(&format!("/v1/tasks{q}")).await?,
        "task-definitions" => client.get("/v1/task-definitions").await?,
        "target-groups" => client.get("/v1/target-groups").await?,
        "load-balancers" => client.get("/v1/load-balancers").await?,
        "container-instances" => client.get(&format!("/v1/container-instances{q}")).await?,
        "namespaces" => client.get("/v1/namespaces").await?,
        "endpoints" => {
            bail!("name the service: berth get endpoints <service> [--cluster <cluster>]")
        }
        "targets" => {
            let tgs = client.get("/v1/target-groups").await?;
            let mut all = Vec::new();
            for tg in tgs.as_array().into_iter().flatten() {
                let name = s(&tg["targetGroupName"]);
                let ts = client
                    .get(&format!("/v1/target-groups/{name}/targets"))
                    .await?;
                all.extend(ts.as_array().cloned().unwrap_or_default());
            }
            Value::Array(all)
        }
        other => bail!("{other} are not listed here; see the autoscaling commands"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    let items = data.as_array().cloned().unwrap_or_default();
    let (headers, rows): (&[&str], Vec<Vec<String>>) = match kind {
        "clusters" => (
            &[
                "NAME",
                "STATUS",
                "INSTANCES",
                "SERVICES",
                "RUNNING",
                "PENDING",
            ],
            items
                .iter()
                .map(|c| {
                    vec![
                        s(&c["clusterName"]),
                        s(&c["status"]),
                        s(&c["registeredContainerInstancesCount"]),
                        s(&c["activeServicesCount"]),
                        s(&c["runningTasksCount"]),
                        s(&c["pendingTasksCount"]),
                    ]
                })
                .collect(),
        ),
        "services" => (
            &[
                "NAME",
                "CLUSTER",
                "STATUS",
                "DESIRED",
                "RUNNING",
                "PENDING",
                "TASK DEFINITION",
                "ROLLOUT",
            ],
            items
                .iter()
                .map(|v| {
                    let rollout =
                        serde_json::from_value::<Vec<Deployment>>(v["deployments"].clone())
                            .ok()
                            .and_then(|ds| {
                                ds.into_iter()
                                    .find(|d| d.status == DeploymentStatus::Primary)
                            })
                            .map(|d| d.rollout_state.as_str().to_string())
                            .unwrap_or_else(|| "-".into());
                    vec![
                        s(&v["serviceName"]),
                        s(&v["cluster"]),
                        s(&v["status"]),
                        s(&v["desiredCount"]),
                        s(&v["runningCount"]),
                        s(&v["pendingCount"]),
                        last(&v["taskDefinition"]),
                        rollout,
                    ]
                })
                .collect(),
        ),
        "tasks" => (
            &[
                "ID",
                "GROUP",
                "LAST STATUS",
                "DESIRED",
                "HEALTH",
                "TASK DEFINITION",
                "PORTS",
                "STOP CODE",
            ],
            items
                .iter()
                .map(|t| {
                    let ports: Vec<String> = t["containers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|c| c["networkBindings"].as_array().cloned().unwrap_or_default())
                        .map(|b| format!("{}->{}", s(&b["hostPort"]), s(&b["containerPort"])))
                        .collect();
                    vec![
                        short(&last(&t["taskArn"])),
                        s(&t["group"]),
                        s(&t["lastStatus"]),
                        s(&t["desiredStatus"]),
                        s(&t["healthStatus"]),
                        last(&t["taskDefinitionArn"]),
                        if ports.is_empty() {
                            "-".into()
                        } else {
                            ports.join(",")
                        },
                        s(&t["stopCode"]),
                    ]
                })
                .collect(),
        ),
        "task-definitions" => (
            &["TASK DEFINITION", "STATUS", "NETWORK MODE", "CONTAINERS"],
            items
                .iter()
                .map(|t| {
                    vec![
                        format!("{}:{}", s(&t["family"]), s(&t["revision"])),
                        s(&t["status"]),
                        s(&t["networkMode"]),
                        t["containerDefinitions"]
                            .as_array()
                            .map(|c| {
                                c.iter()
                                    .map(|c| s(&c["name"]))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default(),
                    ]
                })
                .collect(),
        ),
        "target-groups" => (
            &[
                "NAME",
                "PROTOCOL",
                "PORT",
                "HEALTH CHECK",
                "INTERVAL",
                "LOAD BALANCERS",
            ],
            items
                .iter()
                .map(|t| {
                    vec![
                        s(&t["targetGroupName"]),
                        s(&t["protocol"]),
                        s(&t["port"]),
                        s(&t["healthCheckPath"]),
                        s(&t["healthCheckIntervalSeconds"]),
                        t["loadBalancerArns"]
                            .as_array()
                            .map(|a| a.iter().map(last).collect::<Vec<_>>().join(","))
                            .filter(|x| !x.is_empty())
                            .unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect(),
        ),
        "targets" => (
            &["TARGET GROUP", "TARGET", "STATE", "REASON", "TASK"],
            items
                .iter()
                .map(|t| {
                    vec![
                        last(&t["targetGroupArn"]),
                        format!("{}:{}", s(&t["id"]), s(&t["port"])),
                        s(&t["targetHealth"]["state"]),
                        s(&t["targetHealth"]["reason"]),
                        short(&last(&t["taskArn"])),
                    ]
                })
                .collect(),
        ),
        "load-balancers" => (
            &["NAME", "TYPE", "STATE", "LISTENERS"],
            items
                .iter()
                .map(|l| {
                    let listeners: Vec<String> = l["listeners"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|x| {
                            let bound = x["boundPort"]
                                .as_u64()
                                .map(|p| format!(" (bound {p})"))
                                .unwrap_or_default();
                            format!("{}:{}{bound}", s(&x["protocol"]), s(&x["port"]))
                        })
                        .collect();
                    vec![
                        s(&l["loadBalancerName"]),
                        s(&l["type"]),
                        s(&l["state"]),
                        listeners.join(", "),
                    ]
                })
                .collect(),
        ),
        "container-instances" => (
            &[
                "ID", "CLUSTER", "STATUS", "AGENT", "RUNNING", "PENDING", "CPU FREE", "MEM FREE",
                "RUNTIME", "ADDRESS",
            ],
            items
                .iter()
                .map(|i| {
                    vec![
                        s(&i["ec2InstanceId"]),
                        last(&i["clusterArn"]),
                        s(&i["status"]),
                        s(&i["agentConnected"]),
                        s(&i["runningTasksCount"]),
                        s(&i["pendingTasksCount"]),
                        remaining(i, "CPU"),
                        remaining(i, "MEMORY"),
                        s(&i["runtime"]),
                        s(&i["attributes"]["berth.address"]),
                    ]
                })
                .collect(),
        ),
        "namespaces" => (
            &["NAME", "TTL", "DESCRIPTION"],
            items
                .iter()
                .map(|n| vec![s(&n["name"]), s(&n["dnsTtlSeconds"]), s(&n["description"])])
                .collect(),
        ),
        _ => unreachable!("normalized kind"),
    };
    print_table(headers, &rows);
    Ok(())
}

/// `berth get endpoints <service>`: one row per endpoint of each discovery name of the
/// service, as the mesh and DNS see it, then the DNS names each port publishes.
pub async fn get_endpoints(
    client: &Client,
    service: &str,
    cluster: &str,
    json: bool,
) -> Result<()> {
    let data = client
        .get(&format!(
            "/v1/clusters/{cluster}/services/{service}/endpoints"
        ))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&data)?);
        return Ok(());
    }
    let ports = data.as_array().cloned().unwrap_or_default();
    if ports.is_empty() {
        println!("service {service} is in no namespace (no serviceConnectConfiguration or serviceRegistries)");
        return Ok(());
    }
    println!("{}", endpoint_table(&ports).join("\n"));
    Ok(())
}

/// The lines `berth get endpoints` prints for `ports` (the endpoints API's answer).
fn endpoint_table(ports: &[Value]) -> Vec<String> {
    let headers = [
        "NAME",
        "ENDPOINT",
        "TASK",
        "STATE",
        "REASON",
        "IN FLIGHT",
        "EJECTED",
        "IN DNS",
    ];
    let mut rows = Vec::new();
    for p in ports {
        let name = format!("{}.{}", s(&p["discoveryName"]), s(&p["namespace"]));
        for e in p["endpoints"].as_array().into_iter().flatten() {
            let reason = e["reason"]
                .as_str()
                .or(e["health"]["reason"].as_str())
                .unwrap_or("-");
            rows.push(vec![
                name.clone(),
                s(&e["address"]),
                short(&s(&e["taskId"])),
                s(&e["health"]["state"]),
                reason.to_string(),
                s(&e["inFlight"]),
                yes_no(&e["ejected"]),
                yes_no(&e["published"]),
            ]);
        }
        if p["endpoints"].as_array().is_none_or(|e| e.is_empty()) {
            rows.push(vec![
                name.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "no running task".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
    }
    let mut out = table_lines(&headers, &rows);
    out.push(String::new());
    let rows: Vec<Vec<String>> = ports
        .iter()
        .map(|p| {
            let aliases: Vec<String> = p["clientAliases"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| format!("{}:{}", s(&a["dnsName"]), s(&a["port"])))
                .collect();
            let names: Vec<String> = p["dnsNames"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect();
            // Absent: any service of the mesh may call (registries: not in the mesh).
            let allowed = match p["allowedCallers"].as_array() {
                Some(list) => list.iter().map(s).collect::<Vec<_>>().join(","),
                None if p["identity"].is_string() => "any".into(),
                None => "-".into(),
            };
            vec![
                format!("{}.{}", s(&p["discoveryName"]), s(&p["namespace"])),
                s(&p["kind"]),
                s(&p["portName"]),
                if aliases.is_empty() {
                    "-".into()
                } else {
                    aliases.join(",")
                },
                s(&p["ttl"]),
                allowed,
                p["identity"].as_str().unwrap_or("-").to_string(),
                names.join(","),
            ]
        })
        .collect();
    out.extend(table_lines(
        &[
            "NAME",
            "KIND",
            "PORT NAME",
            "CLIENT ALIASES",
            "TTL",
            "ALLOWED CALLERS",
            "IDENTITY",
            "DNS NAMES",
        ],
        &rows,
    ));
    out
}

fn yes_no(v: &Value) -> String {
    if v.as_bool() == Some(true) {
        "yes"
    } else {
        "no"
    }
    .into()
}

fn object_path(kind: &str, name: &str, cluster: &str) -> Result<String> {
    Ok(match normalize_kind(kind)? {
        "clusters" => format!("/v1/clusters/{name}"),
        "services" => format!("/v1/clusters/{cluster}/services/{name}"),
        "tasks" => format!("/v1/clusters/{cluster}/tasks/{name}"),
        "task-definitions" => format!("/v1/task-definitions/{name}"),
        "target-groups" => format!("/v1/target-groups/{name}"),
        "targets" => format!("/v1/target-groups/{name}/targets"),
        "load-balancers" => format!("/v1/load-balancers/{name}"),
        "namespaces" => format!("/v1/namespaces/{name}"),
        "endpoints" => format!("/v1/clusters/{cluster}/services/{name}/endpoints"),
        other => bail!("describe/delete does not take {other}"),
    })
}

pub async fn describe(client: &Client, kind: &str, name: &str, cluster: &str) -> Result<()> {
    let v = client.get(&object_path(kind, name, cluster)?).await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub async fn delete(client: &Client, kind: &str, name: &str, cluster: &str) -> Result<()> {
    let v = client.delete(&object_path(kind, name, cluster)?).await?;
    let what = v["status"]
        .as_str()
        .map(|st| format!(" ({st})"))
        .unwrap_or_default();
    println!(
        "{} {name} deleted{what}",
        normalize_kind(kind)?.trim_end_matches('s')
    );
    Ok(())
}

pub async fn apply(client: &Client, path: &Path, dry_run: bool, json: bool) -> Result<()> {
    let stack = read_stack(path)?;
    let body = serde_json::to_value(&stack)?;
    let q = if dry_run { "?dryRun=true" } else { "" };
    let changes = client.post(&format!("/v1/apply{q}"), &body).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = changes
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| vec![s(&c["kind"]), s(&c["name"]), s(&c["action"])])
        .collect();
    print_table(&["KIND", "NAME", "ACTION"], &rows);
    for line in apply_warnings(&changes) {
        eprintln!("{line}");
    }
    Ok(())
}

/// One line per member apply accepted but berth does not apply:
/// `warning: <kind> <name>: <field>: accepted but not applied: <reason>`.
pub fn apply_warnings(changes: &Value) -> Vec<String> {
    changes
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            let what = format!("{} {}", s(&c["kind"]), s(&c["name"]));
            c["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |w| format!("warning: {what}: {}", s(w)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_print_one_row_per_endpoint_and_the_names_published() {
        let ports = serde_json::json!([{
            "kind": "serviceConnect", "namespace": "internal", "discoveryName": "backend",
            "portName": "http", "clientAliases": [{"port": 80, "dnsName": "backend"}],
            "dnsNames": ["backend.internal", "backend"], "ttl": 5,
            "allowedCallers": ["web", "billing"], "identity": "spiffe://default/ns/internal/sa/backend",
            "endpoints": [
                {"address": "10.0.0.1:8080", "taskId": "0123456789abcdef", "health": {"state": "healthy"},
                 "inFlight": 2, "ejected": false, "published": true},
                {"address": "10.0.0.2:8080", "taskId": "t2", "health": {"state": "unhealthy", "reason": "Target.Timeout"},
                 "inFlight": 0, "ejected": true, "published": false, "reason": "unhealthy in the mesh"}
            ]
        }]);
        let lines = endpoint_table(ports.as_array().unwrap());
        assert!(
            lines[0].starts_with("NAME") && lines[0].contains("IN DNS"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("10.0.0.1:8080") && lines[1].contains("0123456789ab "),
            "{lines:?}"
        );
        assert!(lines[1].ends_with("yes"), "{lines:?}");
        assert!(
            lines[2].contains("unhealthy in the mesh") && lines[2].ends_with("no"),
            "{lines:?}"
        );
        let names = lines.iter().find(|l| l.contains("serviceConnect")).unwrap();
        assert!(
            names.contains("backend:80") && names.ends_with("backend.internal,backend"),
            "{names}"
        );
        assert!(
            names.contains(" web,billing ")
                && names.contains("spiffe://default/ns/internal/sa/backend"),
            "{names}"
        );
    }

    #[test]
    fn apply_warnings_name_the_resource_and_the_field() {
        let changes = serde_json::json!([
            {"kind": "task-definition", "name": "web:1", "action": "registered",
             "warnings": ["containerDefinitions[0].logConfiguration: accepted but not applied: later"]},
            {"kind": "target-group", "name": "web", "action": "created"},
            {"kind": "service", "name": "web", "action": "created",
             "warnings": ["enableExecuteCommand: accepted but not applied: later"]},
        ]);
        assert_eq!(
            apply_warnings(&changes),
            [
                "warning: task-definition web:1: containerDefinitions[0].logConfiguration: accepted but not applied: later",
                "warning: service web: enableExecuteCommand: accepted but not applied: later",
            ]
        );
        assert!(apply_warnings(&serde_json::json!([])).is_empty());
    }
}
