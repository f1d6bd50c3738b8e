//! A headless Chromium driven through chromedriver's W3C WebDriver API
//! (plain JSON over HTTP/1.1 on loopback), for the topology page test.
//!
//! [`Browser::start`] returns `None` when chromium or chromedriver is not
//! installed, unless `FEDMESH_REQUIRE_BROWSER` (or `CI`) is set: then it
//! panics, so a CI run never skips the test silently. Dropping the
//! browser ends the session (chromedriver stops its chromium) and kills
//! chromedriver, also when the test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The flags the page test runs chromium with: headless, no sandbox (the
/// tests run as root), and nothing that talks to the network on its own.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// A WebDriver session on a chromedriver child.
pub(super) struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

fn required() -> bool {
    ["FEDMESH_REQUIRE_BROWSER", "CI"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// The first of `names` found on PATH.
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and opens a session with a fresh profile.
    ///
    /// # Panics
    /// When the browser is missing and required, or does not start.
    pub(super) fn start() -> Option<Browser> {
        let chromium = find(&["chromium", "chromium-browser", "google-chrome"]);
        let driver = find(&["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            assert!(
                !required(),
                "chromium and chromedriver are required (FEDMESH_REQUIRE_BROWSER is set): apt-get install chromium chromium-driver"
            );
            eprintln!("chromium or chromedriver is not installed: browser test skipped");
            return None;
        };
        let port = free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut browser = Browser {
            driver: child,
            port,
            session: String::new(),
            _profile: profile,
        };
        browser.wait_ready();
        browser.session = browser.new_session(&chromium);
        Some(browser)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = request(self.port, "GET", "/status", None)
                && v["value"]["ready"] == true
            {
                return;
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn new_session(&self, chromium: &Path) -> String {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            self._profile.path().display()
        ));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        }}});
        let v = request(self.port, "POST", "/session", Some(&caps)).expect("new session");
        v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string()
    }

    /// Opens `url` in the session's window.
    pub(super) fn goto(&self, url: &str) {
        let path = format!("/session/{}/url", self.session);
        let v = request(self.port, "POST", &path, Some(&json!({"url": url}))).expect("navigate");
        assert!(v["value"].is_null(), "navigation failed: {v}");
    }

    /// Runs `script` (a function body) in the page and returns its value.
    pub(super) fn eval(&self, script: &str) -> Value {
        let path = format!("/session/{}/execute/sync", self.session);
        let body = json!({"script": script, "args": []});
        let v = request(self.port, "POST", &path, Some(&body)).expect("execute script");
        v["value"].clone()
    }
}

impl Browser {
    /// Saves a PNG of the window to `path` (for a person to look at).
    pub(super) fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let at = format!("/session/{}/screenshot", self.session);
        let v = request(self.port, "GET", &at, None).expect("screenshot");
        let png = v["value"]
            .as_str()
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .expect("a base64 PNG");
        std::fs::write(path, png).expect("write the screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = request(self.port, "DELETE", &path, None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// One WebDriver call; the JSON answer, or the I/O error.
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<Value> {
    let mut conn = TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(conn);
    let mut chunked = false;
    let mut length = None;
    // Status line and headers: bounded by the header count.
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut text = Vec::new();
    if chunked {
        read_chunks(&mut reader, &mut text)?;
    } else if let Some(n) = length {
        text.resize(n, 0);
        reader.read_exact(&mut text)?;
    } else {
        reader.read_to_end(&mut text)?;
    }
    serde_json::from_slice(&text).map_err(|e| std::io::Error::other(e.to_string()))
}

/// RFC 9112 §7.1 chunked body, without trailers.
fn read_chunks(reader: &mut impl BufRead, out: &mut Vec<u8>) -> std::io::Result<()> {
    for _ in 0..100_000 {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if n == 0 {
            return Ok(());
        }
        let start = out.len();
        out.resize(start + n, 0);
        reader.read_exact(&mut out[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
    Err(std::io::Error::other("too many chunks"))
}
