//! The depth page in headless Chromium, driven over the DevTools protocol:
//! it shows 10 bid and 10 ask levels that change while the feed runs, and
//! a screenshot is saved as `target/gateway-depth.png` (workspace root).
//! Without Chromium (`/usr/bin/chromium`, or `MDBUS_CHROMIUM`) the test
//! writes `SKIP ...` to the terminal and passes, except under CI (`CI`
//! set), where it fails: CI installs Chromium.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Harness, WATCHDOG, runtime};
use futures_util::{SinkExt, StreamExt};
use mdbus_gateway::GatewayConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("MDBUS_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    path.is_file().then_some(path)
}

/// Kills the browser when dropped.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A DevTools protocol connection to the browser.
struct Cdp {
    ws: common::Ws,
    next_id: u64,
}

impl Cdp {
    async fn call(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut request = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            request["sessionId"] = json!(session);
        }
        self.ws.send(Message::text(request.to_string())).await.unwrap();
        loop {
            let message = tokio::time::timeout(WATCHDOG, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("watchdog: no answer to {method}"))
                .expect("DevTools connection closed")
                .unwrap();
            let Message::Text(text) = message else { continue };
            let reply: Value = serde_json::from_str(text.as_str()).unwrap();
            if reply["id"] == id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page; its value (a JSON string) parsed.
    async fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
                Some(session),
            )
            .await;
        let text = result["result"]["value"].as_str().unwrap_or("null").to_string();
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

const LADDER: &str = r#"JSON.stringify({
    bids: document.querySelectorAll('#bids tr.level.filled').length,
    asks: document.querySelectorAll('#asks tr.level.filled').length,
    ladder: document.querySelector('#bids tbody').innerText + ' | ' + document.querySelector('#asks tbody').innerText,
    trades: document.querySelectorAll('#trades tbody tr').length,
    status: document.getElementById('status').textContent,
    updates: Number(document.body.dataset.updates || 0)
})"#;

#[test]
fn depth_page_shows_ten_levels_a_side_that_change_live() {
    let Some(chromium) = chromium() else {
        mdbus_types::test_support::skip(
            "depth_page_shows_ten_levels_a_side_that_change_live",
            "chromium not found (apt-get install chromium)",
        );
        return;
    };
    let mut harness = Harness::start(
        &format!("gw-browser-{}", std::process::id()),
        8,
        3000,
        GatewayConfig::default(),
    );
    let page = format!("http://{}/?instrument=IF2501", harness.gateway.local_addr());
    let profile = tempfile::tempdir().unwrap();
    let _browser = Browser(
        Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,720",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Chromium writes its DevTools port and path here once it listens.
    let port_file = profile.path().join("DevToolsActivePort");
    let deadline = Instant::now() + WATCHDOG;
    let devtools = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file)
            && let [port, path, ..] = text.lines().collect::<Vec<_>>()[..]
        {
            break format!("ws://127.0.0.1:{port}{path}");
        }
        assert!(
            Instant::now() < deadline,
            "watchdog: chromium wrote no DevToolsActivePort"
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    let stop = AtomicBool::new(false);
    let rt = runtime();
    std::thread::scope(|scope| {
        // The feed keeps moving while the page is watched (~2000 events/s).
        let publishing = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                harness.publish(20);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(async {
                let (ws, _) = tokio_tungstenite::connect_async(devtools.as_str()).await.unwrap();
                let mut cdp = Cdp { ws, next_id: 0 };
                let target = cdp.call("Target.createTarget", json!({"url": page}), None).await;
                let target_id = target["targetId"].as_str().unwrap().to_string();
                let attached = cdp
                    .call(
                        "Target.attachToTarget",
                        json!({"targetId": target_id, "flatten": true}),
                        None,
                    )
                    .await;
                let session = attached["sessionId"].as_str().unwrap().to_string();

                // 10 levels a side.
                let deadline = Instant::now() + WATCHDOG;
                let first = loop {
                    let ladder = cdp.eval(&session, LADDER).await;
                    if ladder["bids"] == 10 && ladder["asks"] == 10 {
                        break ladder;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "watchdog: the page never showed 10+10 levels: {ladder}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                // ... that change while the feed runs.
                let deadline = Instant::now() + WATCHDOG;
                let later = loop {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let ladder = cdp.eval(&session, LADDER).await;
                    if ladder["ladder"] != first["ladder"] && ladder["bids"] == 10 && ladder["asks"] == 10 {
                        break ladder;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "watchdog: the ladder never changed: {ladder}"
                    );
                };
                assert!(later["updates"].as_u64() > first["updates"].as_u64(), "{first} {later}");
                assert_eq!(later["status"], "live", "{later}");
                println!("depth page: first {first}\nlater {later}");

                // Let the trades and the per-second counters fill, then
                // take the screenshot.
                tokio::time::sleep(Duration::from_millis(1500)).await;
                let shot = cdp
                    .call("Page.captureScreenshot", json!({"format": "png"}), Some(&session))
                    .await;
                let png = base64::engine::general_purpose::STANDARD
                    .decode(shot["data"].as_str().unwrap())
                    .unwrap();
                assert!(png.starts_with(b"\x89PNG"), "not a PNG");
                let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join("gateway-depth.png");
                std::fs::write(&path, &png).unwrap();
                println!("screenshot: {} ({} bytes)", path.display(), png.len());
                let _ = cdp.call("Browser.close", json!({}), None).await;
            })
        }));
        stop.store(true, Ordering::Relaxed);
        publishing.join().unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    });
}
