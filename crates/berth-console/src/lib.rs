//! berth-console: the web console `berth server` serves at `/console/`.
//!
//! A server-rendered shell ([`assets`]: one HTML page, one hand-written JavaScript
//! module, one CSS file, embedded in the binary with `include_str!`) that reads and writes
//! everything through berth's own `/v1` API from the browser, as the CLI does, and
//! re-renders what changed when the store's change stream (`GET /v1/events/stream`)
//! reports a write. This crate also mounts that stream and runs the metrics history the
//! service charts read ([`berth_control::console_api::metrics_history`]), both bound to
//! the server's stop signal.
//!
//! What it does not do: decide or store anything (every action is an API call the
//! control plane checks), fetch anything from the internet (no CDN, no fonts, no
//! build step), or enforce access control: with authentication on, the page signs in
//! with an access key id and secret (`POST /console/session`,
//! [`berth_control::console_session`]) and every later call is authorized by the
//! session's cookie, as the CLI's by its signature; the page asks `GET /v1/whoami`
//! which actions are allowed and hides the buttons of the others; the API stays the
//! authority.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use berth_control::console_api::events;
use berth_control::console_api::metrics_history::{self, MetricsHistory};
use berth_control::Db;
use tokio::sync::watch;

pub mod assets;

/// The console's routes: `/` and `/console` redirect to `/console/`, the page and its two
/// assets, the change stream (`GET /v1/events/stream`, whose open streams end when `stop`
/// turns true, so they never hold the server's graceful shutdown) and the metrics history
/// route, whose sampler starts here and runs until `stop` turns true. `registry` is berth's own Prometheus registry (the proxy's metrics).
pub fn router(db: &Db, registry: &prometheus::Registry, stop: watch::Receiver<bool>) -> Router {
    let history: Arc<MetricsHistory> = MetricsHistory::new();
    history.spawn_sampler(db.clone(), registry.clone(), stop.clone());
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|| async { asset(assets::INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(assets::APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(assets::APP_CSS, "text/css; charset=utf-8") }),
        )
        .merge(metrics_history::routes(history))
        .merge(events::routes(db, stop))
}

/// An embedded asset: revalidated on every load (a new binary serves new assets), and
/// allowed to load only from the server itself.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn serve() -> (String, watch::Sender<bool>) {
        let store: berth_control::db::Db = Db::new(Arc::new(berth_store_memory()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let app = router(&store, &prometheus::Registry::new(), stop_rx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), stop_tx)
    }

    fn berth_store_memory() -> berth_store::MemoryStore {
        berth_store::MemoryStore::new()
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_with_their_types() {
        let (base, _stop) = serve().await;
        let page = reqwest::get(format!("{base}/console/")).await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let text = page.text().await.unwrap();
        assert!(
            text.contains(r#"<script type="module" src="/console/app.js">"#),
            "{text}"
        );
        let js = reqwest::get(format!("{base}/console/app.js"))
            .await
            .unwrap();
        assert_eq!(
            js.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert!(js.text().await.unwrap().contains("/v1/events/stream"));
        let css = reqwest::get(format!("{base}/console/app.css"))
            .await
            .unwrap();
        assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
        let root = reqwest::get(format!("{base}/")).await.unwrap();
        assert_eq!(root.url().path(), "/console/", "/ leads to the console");
    }

    #[tokio::test]
    async fn an_open_change_stream_does_not_hold_the_shutdown() {
        let db = Db::new(Arc::new(berth_store_memory()));
        let (stop_tx, stop_rx) = watch::channel(false);
        let app = router(&db, &prometheus::Registry::new(), stop_rx.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
        let mut stream = reqwest::get(format!("http://{addr}/v1/events/stream"))
            .await
            .unwrap();
        assert_eq!(stream.headers()["content-type"], "text/event-stream");
        let first = stream.chunk().await.unwrap().unwrap();
        let first = String::from_utf8_lossy(&first);
        assert!(first.starts_with("event: hello\n"), "{first}");
        stop_tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .expect("the server stops with a stream open")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn the_metrics_history_of_an_unknown_service_is_empty() {
        let (base, _stop) = serve().await;
        let r = reqwest::get(format!(
            "{base}/v1/clusters/default/services/nothing/metrics-history"
        ))
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert_eq!(text, r#"{"intervalSeconds":10,"points":[]}"#);
    }
}
