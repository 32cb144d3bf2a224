//! Headless Chromium driven over the W3C WebDriver HTTP API (chromedriver), with reqwest —
//! no browser-automation crate, just the dozen endpoints the tests use.
//!
//! Chromium comes from Debian's `chromium` and `chromium-driver` packages. When they are
//! missing and the tests run as root, they are installed (`apt-get`); otherwise the test
//! fails saying how to install them — a browser test never passes by not running.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Makes sure Chromium and chromedriver are installed.
///
/// # Panics
///
/// When they are missing and cannot be installed.
pub fn ensure_chromium() {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root,
        "the browser tests need Chromium: run `apt-get install -y chromium chromium-driver` \
         as root (Debian packages), then run the tests again"
    );
    // Several tests may get here at once: one installs, the others wait for its lock.
    let status = Command::new("sh")
        .arg("-c")
        .arg(
            "exec 9>/tmp/dialtone-chromium-install.lock && flock 9 && \
             { [ -x /usr/bin/chromedriver ] || { apt-get update -qq && \
               DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }; }",
        )
        .status()
        .expect("sh runs");
    assert!(
        status.success() && Path::new(CHROMEDRIVER).exists(),
        "installing chromium and chromium-driver with apt-get failed ({status})"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    quit: bool,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked never called `quit`: end the session with a plain blocking
        // request (no runtime in `drop`), or Chromium would outlive the killed driver.
        if !self.quit {
            let _ = delete_session_blocking(&self.session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE <session url>` over a bare TCP connection.
fn delete_session_blocking(session_url: &str) -> std::io::Result<()> {
    use std::io::{Read as _, Write as _};
    let rest = session_url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    Ok(())
}

fn check(v: Value) -> Result<Value, String> {
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    match value.get("error") {
        Some(e) => Err(format!(
            "{e}: {}",
            value.get("message").and_then(Value::as_str).unwrap_or("")
        )),
        None => Ok(value),
    }
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session, `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        ensure_chromium();
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile folder");
        let http = crate::fixture::http();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == json!(true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            },
        }}});
        let created = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("POST /session");
        let created = check(created.json().await.expect("JSON")).expect("a session");
        let session = created["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Browser {
            http,
            session: format!("{base}/session/{session}"),
            driver,
            quit: false,
            _profile: profile,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, String> {
        let req = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        let req = if method == reqwest::Method::GET {
            req
        } else {
            req.json(&body)
        };
        let res = req.send().await.map_err(|e| e.to_string())?;
        check(res.json().await.map_err(|e| e.to_string())?)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, String> {
        self.call(reqwest::Method::POST, path, body).await
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        self.call(reqwest::Method::GET, path, Value::Null).await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }))
            .await
            .unwrap_or_else(|e| panic!("navigating to {url}: {e}"));
    }

    /// The page's URL.
    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Polls the page's URL until it ends with `suffix` (a click that navigates may return
    /// before the new page is there); false after `deadline`.
    pub async fn wait_url(&self, suffix: &str, deadline: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if self.url().await.ends_with(suffix)
                && self.eval("return document.readyState").await == json!("complete")
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The first element matching `css`.
    pub async fn find(&self, css: &str) -> Result<String, String> {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await?;
        v[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no element id for {css}"))
    }

    /// The element's visible text.
    pub async fn text(&self, element: &str) -> Result<String, String> {
        self.get(&format!("/element/{element}/text"))
            .await
            .map(|v| v.as_str().unwrap_or("").to_owned())
    }

    /// The visible text of the first element matching `css`.
    pub async fn text_of(&self, css: &str) -> Result<String, String> {
        let el = self.find(css).await?;
        self.text(&el).await
    }

    /// Types `text` into the element.
    pub async fn send_keys(&self, element: &str, text: &str) {
        self.post(
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await
        .expect("typing");
    }

    /// Clicks the element.
    pub async fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}))
            .await
            .expect("clicking");
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
            .expect("script runs")
    }

    /// Polls `css`'s text until `want` accepts it; the time it took, or the last text.
    pub async fn wait_text(
        &self,
        css: &str,
        deadline: Duration,
        want: impl Fn(&str) -> bool,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < deadline {
            if let Ok(text) = self.text_of(css).await {
                if want(&text) {
                    return Ok(start.elapsed());
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(last)
    }

    /// Resizes the window to `width` and the page's full height (up to `max_height`), so a
    /// screenshot shows the whole page.
    pub async fn fit(&self, width: u32, max_height: u32) {
        // Shrink first: the document is never shorter than the window.
        let _ = self
            .post("/window/rect", json!({"width": width, "height": 400}))
            .await;
        let h = self
            .eval("return document.documentElement.scrollHeight")
            .await
            .as_u64()
            .and_then(|h| u32::try_from(h).ok())
            .unwrap_or(900);
        // The window's frame takes some height in headless mode too; measure it.
        let _ = self
            .post(
                "/window/rect",
                json!({"width": width, "height": h.clamp(400, max_height)}),
            )
            .await;
        let inner = self
            .eval("return window.innerHeight")
            .await
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(h);
        let frame = h.clamp(400, max_height).saturating_sub(inner);
        let _ = self
            .post(
                "/window/rect",
                json!({"width": width, "height": (h + frame).clamp(400, max_height)}),
            )
            .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.get("/screenshot").await.expect("a screenshot");
        base64_decode(v.as_str().unwrap_or("")).expect("base64 PNG")
    }

    /// Ends the session (closes Chromium).
    pub async fn quit(mut self) {
        let _ = self.http.delete(self.session.clone()).send().await;
        self.quit = true;
    }
}

/// Standard base64 (the screenshot's encoding), without a crate for it.
fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let value = |c: u8| -> Result<u32, String> {
        Ok(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("not base64: {c}")),
        }))
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c)? << (18 - 6 * i);
        }
        let [_, a, b, c] = n.to_be_bytes();
        out.push(a);
        if chunk.len() > 2 {
            out.push(b);
        }
        if chunk.len() > 3 {
            out.push(c);
        }
    }
    Ok(out)
}
