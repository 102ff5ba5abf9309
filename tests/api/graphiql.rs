//! GraphiQL in a real browser: the playground on `/graphql` runs a
//! subscription over `/graphql/ws`, within its Content-Security-Policy.
//!
//! Needs Chromium (Debian's `chromium`), so it is ignored by default; CI
//! runs it when Chromium is installed:
//! `cargo test --test api -- --ignored graphiql_runs_a_subscription_in_chromium`.

use std::{process::Stdio, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpStream,
    process::Command,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

use crate::{helpers::TestApp, shop_fixture::ShopFixture};

/// A page of the browser, driven over the DevTools protocol.
struct Page {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    id: u64,
}

impl Page {
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = self.id;
        let message = json!({ "id": id, "method": method, "params": params });
        self.ws.send(Message::Text(message.to_string().into())).await.unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = self.ws.next().await else { continue };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call("Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }))
            .await;
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    async fn until(&mut self, expression: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self.eval(expression).await != json!(true) {
            if tokio::time::Instant::now() > deadline {
                let shown = self.eval(RESPONSE).await;
                panic!("never: {what}; GraphiQL shows {shown}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What the response pane shows.
const RESPONSE: &str = "(document.querySelector('.graphiql-response .CodeMirror') || {CodeMirror: {getValue: () => ''}}).CodeMirror.getValue()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium (Debian's `chromium`); CI runs it when it is installed"]
async fn graphiql_runs_a_subscription_in_chromium() {
    let app = TestApp::sqlite().start().await;
    let shop = ShopFixture::open(&app, "browser", "Europe/London", "09:00", "17:00").await;
    let client = app.register("client@browser.test", "correct horse battery", "Client").await;
    let date = shop.upcoming_weekday();
    let start = shop.at(date, 10, 0);

    let profile = tempfile::tempdir().unwrap();
    let mut chromium =
        Command::new(std::env::var("CHROMIUM").unwrap_or_else(|_| "chromium".to_owned()))
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("Chromium starts (install Debian's `chromium`, or set CHROMIUM)");
    let mut lines = BufReader::new(chromium.stderr.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("DevTools listening on ws://127.0.0.1:").nth(1) {
                return rest.split('/').next().unwrap().parse().unwrap();
            }
        }
        panic!("Chromium exited before listening");
    })
    .await
    .expect("Chromium's DevTools listen within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let target = targets.as_array().unwrap().iter().find(|t| t["type"] == "page").unwrap();
    let (ws, _) =
        tokio_tungstenite::connect_async(target["webSocketDebuggerUrl"].as_str().unwrap())
            .await
            .unwrap();
    let mut page = Page { ws, id: 0 };

    page.call("Page.navigate", json!({ "url": app.url("/graphql") })).await;
    page.until("!!document.querySelector('.graphiql-execute-button')", "GraphiQL loaded").await;
    let subscription = format!(
        "subscription {{ slotsChanged(barberId: \"{}\", serviceId: \"{}\", date: \"{date}\") {{ startsAt }} }}",
        shop.barber_id, shop.service_id
    );
    page.eval(&format!(
        "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue({})",
        json!(subscription)
    ))
    .await;
    // GraphiQL parses the edited document a moment later; only then does
    // it know to send it over the WebSocket. Run before that, it goes over
    // HTTP and is refused: run it again until it went the right way.
    let mut attempts = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        page.eval("document.querySelector('.graphiql-execute-button').click()").await;
        page.until(&format!("{RESPONSE}.length > 0"), "an answer in the response pane").await;
        let shown = page.eval(RESPONSE).await;
        if !shown.as_str().unwrap_or_default().contains("not supported on this transport") {
            break;
        }
        attempts += 1;
        assert!(attempts < 10, "GraphiQL never sent the subscription over the WebSocket");
    }
    let slot = format!("\"{}\"", start.to_rfc3339());
    page.until(&format!("{RESPONSE}.includes({})", json!(slot)), "the free slots shown").await;
    let first = page.eval(RESPONSE).await;
    assert!(first.as_str().unwrap().contains("slotsChanged"), "{first}");

    // A booking made elsewhere takes the slot out of what GraphiQL shows.
    let booked = shop.book(&app, &client, start).await;
    assert!(booked.get("errors").is_none(), "{booked:#}");
    page.until(
        &format!("{RESPONSE}.includes('slotsChanged') && !{RESPONSE}.includes({})", json!(slot)),
        "the booked slot gone from GraphiQL's answer",
    )
    .await;
    let _ = chromium.kill().await;
}
