//! The console's files, embedded in the binary: the page's shell, its one JavaScript
//! module (no framework, no build step) and its one style sheet.

/// The shell: navigation, the live-status indicator and the view the module fills.
pub const INDEX_HTML: &str = include_str!("assets/index.html");
/// Routing by URL fragment, the views, the API calls and the change stream.
pub const APP_JS: &str = include_str!("assets/app.js");
/// Layout (a phone width included), colours of sufficient contrast, focus outlines.
pub const APP_CSS: &str = include_str!("assets/app.css");
