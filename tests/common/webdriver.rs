//! Just enough of the W3C WebDriver protocol to drive Debian's Chromium through `chromedriver` from a
//! test: open pages, find elements by CSS, type, click, read the page, take screenshots.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Whether chromedriver and chromium are installed (else the test says it is skipped).
pub fn available() -> bool {
    std::path::Path::new("/usr/bin/chromedriver").exists() && std::path::Path::new("/usr/bin/chromium").exists()
}

impl Browser {
    /// Headless Chromium at phone width (`width` px) or desktop.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (Debian package chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         format!("--window-size={width},{height}")],
            }
        }}});
        let mut session = None;
        for _ in 0..100 {
            if let Ok(r) = http.post(format!("{base}/session")).body(caps.to_string()).send().await {
                let v: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
                session = Some(v["value"]["sessionId"].as_str().expect("a session").to_string());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Browser { driver, base, session: session.expect("chromedriver answers"), http }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if method == reqwest::Method::POST {
            req = req.body(body.to_string());
        }
        let v: Value = serde_json::from_str(&req.send().await.unwrap().text().await.unwrap()).unwrap();
        assert!(v["value"]["error"].is_null(), "webdriver {path}: {v}");
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url})).await;
    }

    pub async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", json!({})).await.as_str().unwrap().to_string()
    }

    pub async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", json!({})).await.as_str().unwrap().to_string()
    }

    /// The page's source once it contains `text` (a click's navigation may still be under way).
    pub async fn source_with(&self, text: &str) -> String {
        for _ in 0..100 {
            let s = self.source().await;
            if s.contains(text) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{text:?} never showed on {}: {}", self.url().await, self.source().await);
    }

    /// Waits until the address contains `fragment`, then gives the page's source.
    pub async fn source_at(&self, fragment: &str) -> String {
        for _ in 0..100 {
            if self.url().await.contains(fragment) && self.source().await.contains("</main>") {
                return self.source().await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never at {fragment:?}: {}", self.url().await);
    }

    /// The element the CSS selector finds first.
    pub async fn find(&self, css: &str) -> String {
        let v = self.call(reqwest::Method::POST, "/element", json!({"using": "css selector", "value": css})).await;
        v[ELEMENT].as_str().unwrap_or_else(|| panic!("no element {css}: {v}")).to_string()
    }

    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/click"), json!({})).await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/clear"), json!({})).await;
        self.call(reqwest::Method::POST, &format!("/element/{el}/value"), json!({"text": text})).await;
    }

    /// Picks the option with this visible text in a `<select>`.
    pub async fn select(&self, css: &str, option: &str) {
        let el = self.find(css).await;
        let opts = self
            .call(
                reqwest::Method::POST,
                &format!("/element/{el}/elements"),
                json!({"using": "css selector", "value": "option"}),
            )
            .await;
        for o in opts.as_array().unwrap() {
            let id = o[ELEMENT].as_str().unwrap();
            let text = self.call(reqwest::Method::GET, &format!("/element/{id}/text"), json!({})).await;
            if text.as_str() == Some(option) {
                self.call(reqwest::Method::POST, &format!("/element/{id}/click"), json!({})).await;
                return;
            }
        }
        panic!("no option {option} in {css}");
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", json!({})).await;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()
    }
}
