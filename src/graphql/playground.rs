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

/// The playground page.
pub async fn page() -> Html<String> {
    let default_query = serde_json::to_string(DEFAULT_QUERY).unwrap_or_else(|_| "\"\"".to_owned());
    Html(format!(
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
  <script>
    const fetcher = GraphiQL.createFetcher({{ url: '/graphql' }});
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: {default_query},
        defaultEditorToolsVisibility: true,
        shouldPersistHeaders: true,
      }})
    );
  </script>
</body>
</html>
"#
    ))
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
