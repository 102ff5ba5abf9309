//! The GraphiQL playground, served from assets built into the binary so it
//! works on machines that cannot reach a CDN.

use axum::{
    extract::Path,
    http::{StatusCode, header},
    response::{Html, IntoResponse, Response},
};

/// (file name, content type, bytes) of the vendored assets; see
/// `assets/graphiql/LICENSES.txt`.
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
];

/// Where the assets are served; the version makes them safe to cache forever.
pub const ASSET_PREFIX: &str = "/graphql/assets/3.8.3";

const DEFAULT_QUERY: &str = r#"# Welcome to BookedBarber. Press the play button to run this query.
# Browsing needs no sign-in; see the README for the demo accounts.
{
  shops(first: 5) {
    totalCount
    nodes {
      id
      name
      timezone
      services { name durationMinutes priceCents currency }
      barbers(first: 3) {
        nodes { displayName services { name } workingHours { weekday opensAt closesAt } }
      }
    }
  }
}
"#;

/// The page's one inline script, which starts GraphiQL.
fn boot_script() -> String {
    let default_query = serde_json::to_string(DEFAULT_QUERY).unwrap_or_else(|_| "\"\"".to_owned());
    format!(
        r#"
    const subscriptionUrl =
      (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql/ws';
    // Subscriptions go over graphql-transport-ws; the headers editor's
    // `Authorization` becomes the `connection_init` payload.
    const fetcher = GraphiQL.createFetcher({{ url: '/graphql', subscriptionUrl }});
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: {default_query},
        defaultEditorToolsVisibility: true,
        shouldPersistHeaders: true,
      }})
    );
  "#
    )
}

/// The page and its Content-Security-Policy: scripts only from this server
/// plus the one inline script, by its hash; requests only to this server;
/// never framed. (GraphiQL sets inline styles, so styles may be inline.)
fn page_and_policy() -> &'static (String, String) {
    static PAGE: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PAGE.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let script = boot_script();
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(script.as_bytes()));
        let policy = format!(
            "default-src 'none'; script-src 'self' 'sha256-{hash}'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        let page = format!(
            r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>BookedBarber GraphiQL</title>
  <link rel="stylesheet" href="{ASSET_PREFIX}/graphiql.min.css">
  <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{ASSET_PREFIX}/react.production.min.js"></script>
  <script src="{ASSET_PREFIX}/react-dom.production.min.js"></script>
  <script src="{ASSET_PREFIX}/graphiql.min.js"></script>
  <script>{script}</script>
</body>
</html>
"#
        );
        (page, policy)
    })
}

/// The playground page, with its Content-Security-Policy.
pub async fn page() -> Response {
    let (page, policy) = page_and_policy();
    let mut response = Html(page.clone()).into_response();
    if let Ok(policy) = axum::http::HeaderValue::from_str(policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// One vendored asset, cacheable for a year.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
