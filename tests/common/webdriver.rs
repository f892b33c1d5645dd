//! A small W3C WebDriver client for the console's browser tests: it starts Debian's
//! `chromedriver` on a free loopback port, opens a headless Chromium session and drives
//! it over the WebDriver HTTP protocol (new session, navigate, find by CSS, click, send
//! keys, text, attributes, scripts, window size, screenshots). No Selenium.
//!
//! `chromium` and `chromium-driver` must be installed (scripts/test installs them); a
//! test fails, never skips, without them. Dropping the [`Browser`] kills chromedriver and
//! the browser it started (one process group).

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// The key WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    base: String,
    session: String,
    http: reqwest::Client,
    driver: Child,
}

/// An element reference of the session.
#[derive(Debug, Clone)]
pub struct Element(pub String);

/// Fails with instructions when chromedriver or chromium is missing.
pub fn require_chromium() {
    for (bin, package) in [
        ("chromedriver", "chromium-driver"),
        ("chromium", "chromium"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {bin}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "{bin} is missing: the console's browser tests need Debian's {package} (scripts/test --install-only installs it)"
        );
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> Result<Browser> {
        require_chromium();
        let port = free_port()?;
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().context("starting chromedriver")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            base,
            session: String::new(),
            http,
            driver,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await
                .ok();
            if let Some(r) = ready {
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not answer /status within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let v = browser.call("POST", "/session", caps).await?;
        browser.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in {v}"))?
            .to_string();
        Ok(browser)
    }

    /// One WebDriver command; its `value`, or the WebDriver error as an error.
    async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let r = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = r.status();
        let v: Value = r
            .json()
            .await
            .with_context(|| format!("{method} {path}: body"))?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {} {}",
                v["value"]["error"],
                v["value"]["message"]
            );
        }
        Ok(v["value"].clone())
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn navigate(&self, url: &str) -> Result<()> {
        self.call("POST", &self.at("/url"), json!({ "url": url }))
            .await
            .map(|_| ())
    }

    pub async fn find(&self, css: &str) -> Result<Element> {
        let v = self
            .call(
                "POST",
                &self.at("/element"),
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        Ok(Element(
            v[ELEMENT]
                .as_str()
                .ok_or_else(|| anyhow!("no element in {v}"))?
                .to_string(),
        ))
    }

    /// Polls for `css` every 100 ms until it is in the page, for up to `timeout`.
    pub async fn wait_find(&self, css: &str, timeout: Duration) -> Result<Element> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.find(css).await {
                Ok(e) => return Ok(e),
                Err(e) if Instant::now() > deadline => {
                    return Err(e.context(format!("waiting {timeout:?} for {css}")))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let v = self
            .call(
                "POST",
                &self.at("/elements"),
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string())))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub async fn click(&self, e: &Element) -> Result<()> {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/click", e.0)),
            json!({}),
        )
        .await
        .map(|_| ())
    }

    pub async fn clear(&self, e: &Element) -> Result<()> {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/clear", e.0)),
            json!({}),
        )
        .await
        .map(|_| ())
    }

    pub async fn send_keys(&self, e: &Element, text: &str) -> Result<()> {
        self.call(
            "POST",
            &self.at(&format!("/element/{}/value", e.0)),
            json!({ "text": text }),
        )
        .await
        .map(|_| ())
    }

    pub async fn text(&self, e: &Element) -> Result<String> {
        let v = self
            .call(
                "GET",
                &self.at(&format!("/element/{}/text", e.0)),
                Value::Null,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn attribute(&self, e: &Element, name: &str) -> Result<Option<String>> {
        let v = self
            .call(
                "GET",
                &self.at(&format!("/element/{}/attribute/{name}", e.0)),
                Value::Null,
            )
            .await?;
        Ok(v.as_str().map(str::to_string))
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its return
    /// value.
    pub async fn script(&self, script: &str, args: Value) -> Result<Value> {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Finds `css` (waiting up to 30 s for it) and clicks it, again if the page
    /// re-rendered it in between.
    pub async fn click_css(&self, css: &str) -> Result<()> {
        let mut tries = 0;
        loop {
            let r = async {
                let e = self.wait_find(css, Duration::from_secs(30)).await?;
                self.click(&e).await
            }
            .await;
            match r {
                Ok(()) => return Ok(()),
                Err(e) if tries < 5 && e.to_string().contains("stale element") => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls `script` every 100 ms until it returns something other than null or false,
    /// failing after `timeout` with `what` and the last value.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        args: Value,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.script(script, args.clone()).await?;
            if !(v.is_null() || v == false) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {timeout:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.call(
            "POST",
            &self.at("/window/rect"),
            json!({"width": width, "height": height}),
        )
        .await
        .map(|_| ())
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let v = self
            .call("GET", &self.at("/screenshot"), Value::Null)
            .await?;
        decode_base64(v.as_str().unwrap_or_default())
    }

    /// Ends the session (the browser quits); the driver stops on drop.
    pub async fn quit(mut self) -> Result<()> {
        let path = self.at("");
        self.call("DELETE", &path, Value::Null).await?;
        self.session.clear();
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and the browser it started share the driver's process group.
        let pgid = nix::unistd::Pid::from_raw(self.driver.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.driver.wait();
    }
}

/// Standard base64 (the screenshot's encoding) to bytes.
pub fn decode_base64(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            _ => bail!("not base64: byte {c}"),
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
