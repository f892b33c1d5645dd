//! Call mode: with `WHOAMI_CALL_URL=http://orders:8080/path` (or `--call URL`) every
//! request but `/health`, `/exit` and `/hold` makes one GET to that URL and answers with
//! the called service's status and body, under a few lines saying who called whom. It
//! shows a service calling another through berth's discovery and mesh.
//!
//! Names resolve through [`crate::resolve`] (berth's DNS server), each answer kept for
//! its TTL; connections are HTTP/1.1, kept alive and reused.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

/// How long one call may take, connecting included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Where calls go, and the connections kept to it.
pub struct Caller {
    url: String,
    host: String,
    port: u16,
    path: String,
    dns_server: Option<SocketAddr>,
    resolved: Mutex<Option<(SocketAddr, Instant)>>,
    idle: Mutex<Vec<SendRequest<Empty<Bytes>>>>,
}

/// What the called service answered.
pub struct Answer {
    pub status: StatusCode,
    /// Its `x-berth-task` header: which task answered.
    pub task: Option<String>,
    pub body: Bytes,
}

impl Caller {
    /// Parses `http://host[:port][/path]`.
    pub fn new(url: &str) -> Result<Caller, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("call URL {url:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .map_err(|_| format!("call URL {url:?}: bad port {p:?}"))?,
            ),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("call URL {url:?}: no host"));
        }
        let dns_server = match host.parse::<IpAddr>() {
            Ok(_) => None,
            Err(_) => Some(crate::resolve::default_server()?),
        };
        Ok(Caller {
            url: url.to_string(),
            host: host.to_string(),
            port,
            path: path.to_string(),
            dns_server,
            resolved: Mutex::new(None),
            idle: Mutex::new(Vec::new()),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn address(&self) -> Result<SocketAddr, String> {
        let Some(server) = self.dns_server else {
            let ip: IpAddr = self.host.parse().map_err(|_| "not an IP".to_string())?;
            return Ok(SocketAddr::new(ip, self.port));
        };
        if let Some((addr, until)) = *self.resolved.lock().expect("resolved lock") {
            if Instant::now() < until {
                return Ok(addr);
            }
        }
        let (ips, ttl) = crate::resolve::lookup_a(server, &self.host).await?;
        let addr = SocketAddr::new(IpAddr::V4(ips[0]), self.port);
        let until = Instant::now() + Duration::from_secs(ttl.min(30).into());
        *self.resolved.lock().expect("resolved lock") = Some((addr, until));
        Ok(addr)
    }

    async fn sender(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        loop {
            let next = self.idle.lock().expect("idle lock").pop();
            match next {
                Some(s) if !s.is_closed() => return Ok(s),
                Some(_) => continue,
                None => break,
            }
        }
        let addr = self.address().await?;
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake with {addr}: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// One GET of the URL.
    pub async fn call(&self) -> Result<Answer, String> {
        tokio::time::timeout(CALL_TIMEOUT, self.call_once())
            .await
            .map_err(|_| format!("{} took longer than {CALL_TIMEOUT:?}", self.url))?
    }

    async fn call_once(&self) -> Result<Answer, String> {
        let mut sender = self.sender().await?;
        sender
            .ready()
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        let req = Request::get(&self.path)
            .header("host", format!("{}:{}", self.host, self.port))
            .header("user-agent", "berth-whoami-call")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("{}: {e}", self.url))?;
        let status = resp.status();
        let task = resp
            .headers()
            .get("x-berth-task")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{}: reading the body: {e}", self.url))?
            .to_bytes();
        self.idle.lock().expect("idle lock").push(sender);
        Ok(Answer { status, task, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let c = Caller::new("http://127.0.0.1:8080/who?x=1").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.path.as_str()),
            ("127.0.0.1", 8080, "/who?x=1")
        );
        assert!(c.dns_server.is_none());
        let c = Caller::new("http://10.0.0.1").unwrap();
        assert_eq!((c.port, c.path.as_str()), (80, "/"));
        assert!(Caller::new("https://x").is_err());
        assert!(Caller::new("http://x:port/").is_err());
        assert!(Caller::new("http://:80/").is_err());
    }

    #[tokio::test]
    async fn calls_and_reuses_the_connection() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            // One connection serves both calls.
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            for i in 0..2 {
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                let body = format!("answer {i}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nx-berth-task: t1\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        let c = Caller::new(&format!("http://{addr}/")).unwrap();
        for i in 0..2 {
            let a = c.call().await.unwrap();
            assert_eq!(a.status, StatusCode::OK);
            assert_eq!(a.task.as_deref(), Some("t1"));
            assert_eq!(a.body, format!("answer {i}"));
        }
        server.await.unwrap();
    }
}
