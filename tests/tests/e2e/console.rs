//! The web console in a real browser (Debian's headless Chromium driven over WebDriver,
//! `tests/common/webdriver.rs`) against a real `berth server` running the quickstart:
//! the services page lists `whoami` 3/3; scaling it to 5 from the service page brings 5
//! healthy targets onto the target group page; stopping a task from the page shows the
//! replacement and its event; "Force new deployment" shows the new PRIMARY deployment
//! and its completion; a bad stack file shows the field error next to the
//! editor. Nothing is reloaded: a marker set in the page at the start must still be
//! there at the end, so every change arrived through the change stream.
//!
//! With authentication on (berth's default) the console signs in: the admin signs in
//! with the admin credentials file's key, scales from the service page and sees the
//! targets come up; a user allowed only to describe and list signs in and sees no action
//! button (no "Force new deployment" either, and the API refuses it); a wrong secret is refused on the form with a message.
//!
//! With `BERTH_CONSOLE_SCREENSHOTS=1` the screenshots of the main pages are written to
//! docs/console/ (the README shows two of them); otherwise to a temporary directory.

use crate::webdriver;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Result};
use berth_testkit::{bin, quickstart, wait_until, Server};
use serde_json::{json, Value};
use webdriver::Browser;

const SETTLE: Duration = Duration::from_secs(60);
const PAGE: Duration = Duration::from_secs(30);

fn screenshot_dir(tmp: &std::path::Path) -> PathBuf {
    if std::env::var("BERTH_CONSOLE_SCREENSHOTS").as_deref() == Ok("1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/console")
    } else {
        tmp.to_path_buf()
    }
}

async fn save(browser: &Browser, dir: &std::path::Path, name: &str) -> Result<()> {
    browser.script("window.scrollTo(0, 0);", json!([])).await?;
    let png = browser.screenshot().await?;
    ensure!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000,
        "{name}: not a PNG ({} bytes)",
        png.len()
    );
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

/// The text of the first element matching `css`, or null.
const TEXT_OF: &str =
    "const e = document.querySelector(arguments[0]); return e && e.textContent ? e.textContent : null;";

/// Whether the marker set at the start survived (the page was never reloaded).
async fn not_reloaded(browser: &Browser) -> Result<()> {
    let marker = browser
        .script("return window.__berthConsoleTest || null;", json!([]))
        .await?;
    ensure!(marker == "set", "the page was reloaded (marker {marker})");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_scales_and_replaces_the_quickstart_live() -> Result<()> {
    webdriver::require_chromium();
    let dir = tempfile::tempdir()?;
    let shots = screenshot_dir(dir.path());
    let server = Server::start(Some(&quickstart(dir.path(), 3))).await?;
    server
        .wait_healthy("whoami", "whoami", 3, SETTLE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log()))?;
    let browser = Browser::start(1200, 820).await?;
    browser
        .navigate(&format!("{}/console/#/services", server.api))
        .await?;
    browser
        .script("window.__berthConsoleTest = 'set';", json!([]))
        .await?;

    // The services page lists whoami with 3 of 3 running.
    let running = browser
        .wait_for(
            "whoami 3/3 on the services page",
            PAGE,
            "const e = document.querySelector('#services tr[data-service=\"whoami\"] td.running'); return e && e.textContent === '3/3' ? e.textContent : null;",
            json!([]),
        )
        .await?;
    assert_eq!(running, "3/3");
    browser
        .wait_for(
            "the change stream to connect",
            PAGE,
            "return document.getElementById('live').textContent === 'live';",
            json!([]),
        )
        .await?;
    save(&browser, &shots, "services").await?;

    // Scale to 5 from the service page.
    browser
        .click_css("#services a[href='#/services/default/whoami']")
        .await?;
    let input = browser.wait_find("#desired-count", PAGE).await?;
    browser
        .wait_for(
            "the desired count field to be filled",
            PAGE,
            "return document.getElementById('desired-count').value === '3';",
            json!([]),
        )
        .await?;
    browser.clear(&input).await?;
    browser.send_keys(&input, "5").await?;
    browser.click_css("#scale").await?;
    let notice = browser
        .wait_for("the scale notice", PAGE, TEXT_OF, json!(["#notice"]))
        .await?;
    assert_eq!(notice, "Scaled whoami to 5", "{notice}");

    // The target group page shows 5 healthy targets as health checks pass, unreloaded.
    browser
        .click_css("#service-load-balancers a[href='#/target-groups/whoami']")
        .await?;
    let healthy = browser
        .wait_for(
            "5 healthy targets on the target group page",
            SETTLE,
            "const rows = document.querySelectorAll('#targets tr.target[data-state=\"healthy\"]'); return rows.length === 5 ? rows.length : null;",
            json!([]),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log()))?;
    assert_eq!(healthy, 5);
    let count = browser
        .wait_for(
            "the healthy count",
            PAGE,
            TEXT_OF,
            json!(["#healthy-count"]),
        )
        .await?;
    assert_eq!(count, "5 of 5");
    not_reloaded(&browser).await?;
    save(&browser, &shots, "target-group").await?;
    let api_targets = server.get("/v1/target-groups/whoami/targets").await?;
    let api_healthy = api_targets
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["targetHealth"]["state"] == "healthy")
                .count()
        })
        .unwrap_or(0);
    assert_eq!(api_healthy, 5, "the API agrees with the page");

    // Stop a task from the service page: it shows STOPPED, and its replacement and the
    // replacement's event appear.
    browser
        .navigate(&format!("{}/console/#/services/default/whoami", server.api))
        .await?;
    browser
        .script("window.__berthConsoleTest = 'set';", json!([]))
        .await?;
    let before: Value = browser
        .wait_for(
            "5 running tasks on the service page",
            PAGE,
            "const ids = [...document.querySelectorAll('#service-tasks tr[data-task]')].filter(r => r.querySelector('td.status').textContent.startsWith('RUNNING')).map(r => r.dataset.task); return ids.length === 5 ? ids : null;",
            json!([]),
        )
        .await?;
    let before: Vec<String> = serde_json::from_value(before)?;
    let victim = before[0].clone();
    let stop = format!("#service-tasks button.stop-task[data-task='{victim}']");
    browser.click_css(&stop).await?;
    browser
        .wait_for(
            "the stop button to ask for confirmation",
            PAGE,
            "const b = document.querySelector(arguments[0]); return b && b.textContent === 'Confirm stop';",
            json!([stop]),
        )
        .await?;
    browser.click_css(&stop).await?;
    browser
        .wait_for(
            "the stopped task to show STOPPED (after draining) with its stop code",
            SETTLE,
            "const r = document.querySelector(`#service-tasks tr[data-task='${arguments[0]}']`); return r && r.querySelector('td.status').textContent.startsWith('STOPPED') && r.textContent.includes('UserInitiated');",
            json!([victim]),
        )
        .await?;
    let replacement: Value = browser
        .wait_for(
            "a replacement task and its event",
            SETTLE,
            "const old = arguments[0];
             const fresh = [...document.querySelectorAll('#service-tasks tr[data-task]')].map(r => r.dataset.task).filter(id => !old.includes(id));
             const events = [...document.querySelectorAll('#events li')].map(li => li.textContent);
             const id = fresh.find(id => events.some(e => e.includes('has started') && e.includes(id)));
             return id || null;",
            json!([before]),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log()))?;
    let replacement = replacement.as_str().unwrap_or_default().to_string();
    assert!(!before.contains(&replacement), "{replacement} is new");
    not_reloaded(&browser).await?;

    // Traffic through the load balancer shows in the service's charts (sampled every
    // 10 s: a rate needs two samples).
    let addr = server.listener_addr("web").await?;
    let http = reqwest::Client::new();
    for _ in 0..300 {
        let r = http.get(format!("http://{addr}/")).send().await?;
        assert!(r.status().is_success(), "{}", r.status());
    }
    let rps = browser
        .wait_for(
            "a request rate in the chart",
            Duration::from_secs(45),
            "const f = document.querySelector('figure[data-metric=\"rps\"]'); const v = f ? parseFloat(f.querySelector('strong').textContent) : NaN; return v > 0 && f.querySelector('polyline') ? v : null;",
            json!([]),
        )
        .await;
    let rps = match rps {
        Ok(v) => v,
        Err(e) => {
            let page = browser
                .script(
                    "return document.getElementById('view').innerText;",
                    json!([]),
                )
                .await?;
            let history = server
                .get("/v1/clusters/default/services/whoami/metrics-history")
                .await?;
            anyhow::bail!("{e}\npage: {page}\nhistory: {history}");
        }
    };
    assert!(rps.as_f64().unwrap_or(0.0) > 0.0, "{rps}");
    let tasks_line = browser
        .script(
            "return document.querySelectorAll('figure[data-metric=\"tasks\"] polyline').length;",
            json!([]),
        )
        .await?;
    assert_eq!(tasks_line, 2, "running and desired tasks are drawn");
    not_reloaded(&browser).await?;
    save(&browser, &shots, "service").await?;

    // A task's page streams its output: a line the task prints after the page opened
    // arrives (the demo app prints one when told to hold memory).
    let task = server
        .get(&format!("/v1/clusters/default/tasks/{replacement}"))
        .await?;
    let port = task["containers"][0]["networkBindings"][0]["hostPort"]
        .as_u64()
        .unwrap_or_default();
    browser
        .navigate(&format!(
            "{}/console/#/tasks/default/{replacement}",
            server.api
        ))
        .await?;
    browser.wait_find("#logs", PAGE).await?;
    let r = http
        .get(format!("http://127.0.0.1:{port}/hold?mib=0"))
        .send()
        .await?;
    assert!(r.status().is_success(), "{}", r.status());
    browser
        .wait_for(
            "the task's output on its page",
            PAGE,
            "return document.getElementById('logs').textContent.includes('holding 0 MiB');",
            json!([]),
        )
        .await?;
    save(&browser, &shots, "task").await?;

    // A stack file uploaded on the apply page registers a new revision and deploys it;
    // rolling back from the service page returns to the previous one.
    let text = std::fs::read_to_string(quickstart(dir.path(), 5))?
        .replace("value: hello from berth", "value: hello from the console");
    let upload = dir.path().join("console-stack.yaml");
    std::fs::write(&upload, &text)?;
    browser
        .navigate(&format!("{}/console/#/apply", server.api))
        .await?;
    let file = browser.wait_find("#stack-file", PAGE).await?;
    browser.send_keys(&file, &upload.to_string_lossy()).await?;
    browser
        .wait_for(
            "the uploaded file in the editor",
            PAGE,
            "return document.getElementById('stack-editor').value.includes('hello from the console');",
            json!([]),
        )
        .await?;
    browser.click_css("#apply").await?;
    let registered = browser
        .wait_for(
            "the applied changes",
            PAGE,
            "const rows = [...document.querySelectorAll('#changes tbody tr')].map(r => r.textContent); return rows.length ? rows : null;",
            json!([]),
        )
        .await?;
    let rows: Vec<String> = serde_json::from_value(registered)?;
    assert!(
        rows.iter()
            .any(|r| r.starts_with("task-definition") && r.contains("registered")),
        "{rows:?}"
    );
    let revision = |want: &'static str| {
        let server = &server;
        async move {
            wait_until(&format!("whoami on {want}"), SETTLE, || async {
                let s = server
                    .get("/v1/clusters/default/services/whoami")
                    .await
                    .ok()?;
                s["taskDefinition"].as_str()?.ends_with(want).then_some(())
            })
            .await
        }
    };
    revision("whoami:2").await?;
    browser
        .navigate(&format!("{}/console/#/services/default/whoami", server.api))
        .await?;
    browser.click_css("#rollback").await?;
    let notice = browser
        .wait_for("the rollback notice", PAGE, TEXT_OF, json!(["#notice"]))
        .await?;
    assert_eq!(notice, "Rolled whoami back", "{notice}");
    revision("whoami:1").await?;
    browser
        .wait_for(
            "the primary deployment of whoami:1 on the page",
            SETTLE,
            "return [...document.querySelectorAll('#deployments tbody tr')].some(r => r.textContent.includes('PRIMARY') && r.textContent.includes('whoami:1'));",
            json!([]),
        )
        .await?;

    // Force a new deployment: it shows as the PRIMARY deployment and completes, live.
    let before = server.get("/v1/clusters/default/services/whoami").await?;
    let old_primary = before["deployments"][0]["id"].clone();
    browser.click_css("#force-new-deployment").await?;
    browser
        .wait_for(
            "the forced deployment notice",
            PAGE,
            "const e = document.querySelector('#notice'); return e && e.textContent === arguments[0] ? e.textContent : null;",
            json!(["Started a new deployment of whoami"]),
        )
        .await?;
    let forced = browser
        .wait_for(
            "the forced deployment on the page",
            PAGE,
            "const r = [...document.querySelectorAll('#deployments tr[data-deployment]')].find(r => r.dataset.deployment !== arguments[0] && r.textContent.includes('PRIMARY') && r.textContent.includes('whoami:1')); return r ? r.dataset.deployment : null;",
            json!([old_primary]),
        )
        .await?;
    let stored = server.get("/v1/clusters/default/services/whoami").await?;
    assert_eq!(stored["deployments"][0]["id"], forced, "{stored}");
    browser
        .wait_for(
            "the forced deployment to complete on the page",
            SETTLE,
            "const rows = [...document.querySelectorAll('#deployments tr[data-deployment]')]; return rows.length === 1 && rows[0].dataset.deployment === arguments[0] && rows[0].textContent.includes('COMPLETED');",
            json!([forced]),
        )
        .await?;
    not_reloaded(&browser).await?;

    // The other main pages render what the API has.
    for (hash, css, name) in [
        ("#/clusters", "#instances tr[data-instance]", "clusters"),
        (
            "#/load-balancers",
            "table[id^='listener-web-']",
            "load-balancers",
        ),
        ("#/tasks", "#tasks tr[data-task]", "tasks"),
        ("#/task-definitions/whoami", "#diff .add", "task-definition"),
    ] {
        browser
            .navigate(&format!("{}/console/{hash}", server.api))
            .await?;
        browser
            .wait_for(
                name,
                PAGE,
                "return document.querySelector(arguments[0]) !== null;",
                json!([css]),
            )
            .await?;
        save(&browser, &shots, name).await?;
    }
    // The task definition page compares the two revisions (1 and 2 by default).
    let diff = browser
        .script(
            "return [[...document.querySelectorAll('#diff .del')].map(e => e.textContent).join(''), [...document.querySelectorAll('#diff .add')].map(e => e.textContent).join('')];",
            json!([]),
        )
        .await?;
    let (removed, added) = (
        diff[0].as_str().unwrap_or(""),
        diff[1].as_str().unwrap_or(""),
    );
    assert!(
        removed.contains("hello from berth") && !removed.contains("family"),
        "{removed}"
    );
    assert!(added.contains("hello from the console"), "{added}");
    browser
        .navigate(&format!("{}/console/#/clusters", server.api))
        .await?;
    let agent = browser
        .wait_for(
            "the instance's agent",
            PAGE,
            "const r = document.querySelector('#instances tr[data-instance]'); return r ? r.children[3].textContent : null;",
            json!([]),
        )
        .await?;
    assert_eq!(agent, "connected");

    // A phone width keeps the navigation and the tables usable.
    browser.set_window_size(390, 844).await?;
    browser
        .navigate(&format!("{}/console/#/services", server.api))
        .await?;
    browser
        .wait_for(
            "the services table at a phone width",
            SETTLE,
            "const e = document.querySelector('#services tr[data-service=\"whoami\"] td.running'); return e && e.textContent === '5/5';",
            json!([]),
        )
        .await?;
    let overflow = browser
        .script(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            json!([]),
        )
        .await?;
    assert_eq!(overflow, true, "the page fits a phone's width");
    save(&browser, &shots, "services-phone").await?;

    // Draining the instance from the clusters page.
    browser.set_window_size(1200, 820).await?;
    browser
        .navigate(&format!("{}/console/#/clusters", server.api))
        .await?;
    let drain = "#instances tr[data-instance] button";
    browser
        .wait_for("the drain button", PAGE, TEXT_OF, json!([drain]))
        .await?;
    browser.click_css(drain).await?;
    browser
        .wait_for(
            "the instance to show DRAINING",
            PAGE,
            "const r = document.querySelector('#instances tr[data-instance]'); return r && r.children[2].textContent === 'DRAINING';",
            json!([]),
        )
        .await?;
    let instances = server.get("/v1/container-instances").await?;
    assert_eq!(instances[0]["status"], "DRAINING", "{instances}");
    browser.quit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_stack_file_shows_the_field_error_next_to_the_editor() -> Result<()> {
    webdriver::require_chromium();
    let dir = tempfile::tempdir()?;
    let shots = screenshot_dir(dir.path());
    let server = Server::start(None).await?;
    let browser = Browser::start(1200, 820).await?;
    browser
        .navigate(&format!("{}/console/#/apply", server.api))
        .await?;
    let editor = browser.wait_find("#stack-editor", PAGE).await?;
    let label = browser
        .script(
            "return document.querySelector('label[for=\"stack-editor\"]').textContent;",
            json!([]),
        )
        .await?;
    assert_eq!(label, "Stack file", "the editor is labelled");
    let bad = "taskDefinitions:\n- family: web\n  containerDefinitions:\n  - name: web\n    image: berth-whoami:latest\n    memory: 64\nservices:\n- serviceName: web\n  taskDefinition: web\n  desiredCount: -2\n";
    browser.send_keys(&editor, bad).await?;
    browser.click_css("#apply").await?;
    let field = browser
        .wait_for(
            "the field error",
            PAGE,
            "const e = document.getElementById('stack-error'); return e && e.dataset.field ? [e.dataset.field, e.textContent] : null;",
            json!([]),
        )
        .await?;
    assert_eq!(field[0], "services[0].desiredCount", "{field}");
    let message = field[1].as_str().unwrap_or_default();
    assert!(
        message.starts_with("services[0].desiredCount: "),
        "{message}"
    );
    assert!(message.contains("0 or more"), "{message}");
    // Next to the editor: the error follows it, and the editor is described by it.
    let placed = browser
        .script(
            "const ed = document.getElementById('stack-editor'); return ed.nextElementSibling.id === 'stack-error' && ed.getAttribute('aria-invalid') === 'true' && ed.getAttribute('aria-describedby').includes('stack-error');",
            json!([]),
        )
        .await?;
    assert_eq!(placed, true);
    save(&browser, &shots, "apply-error").await?;
    let services = server.get("/v1/services").await?;
    assert_eq!(services, json!([]), "a refused file changes nothing");
    let defs = server.get("/v1/task-definitions").await?;
    assert_eq!(defs, json!([]), "a refused file changes nothing");
    browser.quit().await?;
    Ok(())
}

/// The `aws_access_key_id` and `aws_secret_access_key` of the admin credentials file.
fn admin_key(data_dir: &std::path::Path) -> (String, String) {
    let text = std::fs::read_to_string(data_dir.join("admin-credentials")).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            .unwrap()
    };
    (field("aws_access_key_id"), field("aws_secret_access_key"))
}

/// `berth <args> -o json` signed with the admin's credentials; must succeed.
fn admin_cli(server: &Server, args: &[&str]) -> Value {
    let out = std::process::Command::new(bin("berth"))
        .args(args)
        .args(["-o", "json"])
        .env("BERTH_ENDPOINT", &server.api)
        .env("BERTH_DATA_DIR", &server.data_dir)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("BERTH_CREDENTIALS")
        .output()
        .expect("running the berth CLI");
    assert!(
        out.status.success(),
        "berth {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Fills the sign-in form and submits it.
async fn sign_in(browser: &Browser, id: &str, secret: &str) -> Result<()> {
    let id_field = browser.wait_find("#access-key-id", PAGE).await?;
    browser.clear(&id_field).await?;
    browser.send_keys(&id_field, id).await?;
    let secret_field = browser.find("#secret-access-key").await?;
    browser.clear(&secret_field).await?;
    browser.send_keys(&secret_field, secret).await?;
    browser.click_css("#sign-in").await
}

/// Signs out with the header's button and waits for the sign-in form.
async fn sign_out(browser: &Browser) -> Result<()> {
    browser.click_css("#sign-out").await?;
    browser
        .wait_for(
            "the sign-in form after signing out",
            PAGE,
            "return !!document.getElementById('sign-in-form');",
            json!([]),
        )
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_on_the_console_signs_in_and_shows_what_policies_allow() -> Result<()> {
    webdriver::require_chromium();
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let server =
        Server::launch_guarded(&data, Some(&quickstart(dir.path(), 2)), "process", &[]).await?;
    let (admin_id, admin_secret) = admin_key(&data);
    let browser = Browser::start(1200, 820).await?;
    browser
        .navigate(&format!("{}/console/#/services/default/whoami", server.api))
        .await?;

    // Unsigned, the page asks to sign in; the admin signs in with its key.
    browser.wait_find("#sign-in-form", PAGE).await?;
    sign_in(&browser, &admin_id, &admin_secret).await?;
    let principal = browser
        .wait_for(
            "the admin's name in the header",
            PAGE,
            TEXT_OF,
            json!(["#principal"]),
        )
        .await?;
    assert_eq!(principal, "arn:berth:iam::000000000000:user/admin");
    let cookie = browser.script("return document.cookie;", json!([])).await?;
    assert_eq!(cookie, "", "the session cookie is HttpOnly: {cookie}");
    let stored = browser
        .script(
            "return JSON.stringify(localStorage) + JSON.stringify(sessionStorage);",
            json!([]),
        )
        .await?;
    assert_eq!(stored, "{}{}", "nothing of the key is kept in the page");
    browser
        .script("window.__berthConsoleTest = 'set';", json!([]))
        .await?;

    // Scale from the service page, then the target group page shows the new targets,
    // all through the session.
    browser
        .wait_for(
            "the desired count field to be filled",
            SETTLE,
            "const e = document.getElementById('desired-count'); return e && e.value === '2' && !e.closest('[data-action]').hidden;",
            json!([]),
        )
        .await?;
    let input = browser.find("#desired-count").await?;
    browser.clear(&input).await?;
    browser.send_keys(&input, "3").await?;
    browser.click_css("#scale").await?;
    let notice = browser
        .wait_for("the scale notice", PAGE, TEXT_OF, json!(["#notice"]))
        .await?;
    assert_eq!(notice, "Scaled whoami to 3", "{notice}");
    browser
        .click_css("#service-load-balancers a[href='#/target-groups/whoami']")
        .await?;
    browser
        .wait_for(
            "3 healthy targets on the target group page",
            SETTLE,
            "const rows = document.querySelectorAll('#targets tr.target[data-state=\"healthy\"]'); return rows.length === 3 ? rows.length : null;",
            json!([]),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", server.log()))?;
    browser
        .wait_for(
            "the change stream to connect",
            PAGE,
            "return document.getElementById('live').textContent === 'live';",
            json!([]),
        )
        .await?;
    not_reloaded(&browser).await?;

    // A read-only user: signs in, reads, and sees no action button.
    let policy = dir.path().join("read-only.json");
    std::fs::write(
        &policy,
        r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ecs:Describe*", "ecs:List*", "elasticloadbalancing:Describe*"], "Resource": "*"}]}"#,
    )?;
    admin_cli(&server, &["iam", "create-user", "reader"]);
    admin_cli(
        &server,
        &[
            "iam",
            "put-user-policy",
            "reader",
            "read",
            "--policy-document",
            &policy.to_string_lossy(),
        ],
    );
    let key = admin_cli(&server, &["iam", "create-access-key", "reader"]);
    let reader_id = key["AccessKey"]["AccessKeyId"]
        .as_str()
        .unwrap()
        .to_string();
    let reader_secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_string();
    sign_out(&browser).await?;
    sign_in(&browser, &reader_id, &reader_secret).await?;
    browser
        .wait_for(
            "the reader's name in the header",
            PAGE,
            "return document.getElementById('principal').textContent.endsWith('user/reader');",
            json!([]),
        )
        .await?;
    browser
        .navigate(&format!("{}/console/#/services/default/whoami", server.api))
        .await?;
    browser
        .wait_for(
            "the reader to see the service's 3 tasks",
            SETTLE,
            "return document.querySelectorAll('#service-tasks tr[data-task]').length >= 3;",
            json!([]),
        )
        .await?;
    let shown = browser
        .script(
            "return [...document.querySelectorAll('[data-action]')].filter(e => !e.hidden && e.offsetParent !== null).map(e => e.dataset.action);",
            json!([]),
        )
        .await?;
    assert_eq!(shown, json!([]), "no action control is shown to the reader");
    let redeploy_hidden = browser
        .script(
            "const e = document.getElementById('force-new-deployment'); return e !== null && (e.hidden || e.offsetParent === null);",
            json!([]),
        )
        .await?;
    assert_eq!(
        redeploy_hidden, true,
        "the reader has no Force new deployment button"
    );
    let forged_redeploy = browser
        .script(
            "return fetch('/v1/clusters/default/services/whoami/deployments', {method: 'POST', headers: {'x-berth-console': '1', 'content-type': 'application/json'}, body: '{}'}).then(r => r.status);",
            json!([]),
        )
        .await?;
    assert_eq!(
        forged_redeploy, 403,
        "the API refuses the reader's redeploy"
    );
    let whoami = browser
        .script("return fetch('/v1/whoami').then(r => r.json());", json!([]))
        .await?;
    assert_eq!(whoami["allowedActions"], json!([]), "{whoami}");
    let forged = browser
        .script(
            "return fetch('/v1/clusters/default/services/whoami', {method: 'PUT', headers: {'x-berth-console': '1', 'content-type': 'application/json'}, body: '{}'}).then(r => r.status);",
            json!([]),
        )
        .await?;
    assert_eq!(forged, 403, "the API refuses the reader's change");

    // A session that ends behind the page's back (here: signed out by another tab)
    // brings the sign-in form back at the next call, without a reload.
    browser
        .script(
            "return fetch('/console/session', {method: 'DELETE'}).then(r => r.status);",
            json!([]),
        )
        .await?;
    browser
        .script("location.hash = '#/tasks';", json!([]))
        .await?;
    browser
        .wait_for(
            "the sign-in form once the session ended",
            PAGE,
            "return !!document.getElementById('sign-in-form');",
            json!([]),
        )
        .await?;

    // A wrong secret: refused on the form with a message, no session.
    sign_in(&browser, &admin_id, "not-the-secret").await?;
    let message = browser
        .wait_for(
            "the sign-in error",
            PAGE,
            "const e = document.getElementById('sign-in-error'); return e && !e.hidden ? e.textContent : null;",
            json!([]),
        )
        .await?;
    assert!(
        message
            .as_str()
            .unwrap_or_default()
            .starts_with("Sign-in failed"),
        "{message}"
    );
    let status = browser
        .script("return fetch('/v1/whoami').then(r => r.status);", json!([]))
        .await?;
    assert_eq!(status, 403, "no session after a wrong secret");
    browser.quit().await?;
    Ok(())
}
