//! A real browser for end-to-end tests: headless Chromium from the distribution's packages,
//! driven over WebDriver (chromedriver on a free loopback port, fantoccini as the client).
//!
//! The browser, its driver and a CJK font are installed by the first test that needs them,
//! from Debian's packages (`apt-get install chromium chromium-driver fonts-wqy-microhei`), when
//! the tests run as root and they are missing; one install at a time across test processes
//! (a lock file). Elsewhere a missing browser fails the test with a message saying what to
//! install. Each [`Browser`] has its own chromedriver process and an empty profile folder,
//! both removed when it is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};

/// Debian packages the browser tests need.
pub const PACKAGES: [&str; 3] = ["chromium", "chromium-driver", "fonts-wqy-microhei"];

/// Longest wait for an element or a page.
pub const WAIT: Duration = Duration::from_secs(20);

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn font_present() -> bool {
    Path::new("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc").exists()
}

/// The paths of Chromium and chromedriver, installed first if needed (and possible).
fn installed() -> &'static Result<(PathBuf, PathBuf), String> {
    static ONCE: OnceLock<Result<(PathBuf, PathBuf), String>> = OnceLock::new();
    ONCE.get_or_init(|| {
        let find = || {
            Some((
                which(&["chromium", "chromium-browser"])?,
                which(&["chromedriver"])?,
            ))
        };
        if let (Some(found), true) = (find(), font_present()) {
            return Ok(found);
        }
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            return find().ok_or_else(|| {
                format!(
                    "the browser tests need Chromium and its driver: install the Debian packages {} (as root), or run the tests as root to have them installed",
                    PACKAGES.join(" ")
                )
            });
        }
        // One install at a time: the tests of several binaries may start together.
        let script = format!(
            "export DEBIAN_FRONTEND=noninteractive; \
             apt-get install -y -qq --no-install-recommends {p} >/dev/null 2>&1 || \
             (apt-get update -qq && apt-get install -y -qq --no-install-recommends {p})",
            p = PACKAGES.join(" ")
        );
        eprintln!("installing {} from the distribution's packages", PACKAGES.join(" "));
        let status = Command::new("flock")
            .arg(std::env::temp_dir().join("fengqiao-browser-install.lock"))
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run apt-get through flock: {e}"))?;
        if !status.success() {
            return Err(format!(
                "installing {} failed ({status}); the browser tests cannot run",
                PACKAGES.join(" ")
            ));
        }
        find().ok_or_else(|| "Chromium installed but not found on PATH".to_string())
    })
}

/// One browser at a time in a test process: on 2 cores several Chromiums at once starve
/// each other (and the nodes under test) into timeouts.
fn one_at_a_time() -> std::sync::Arc<tokio::sync::Mutex<()>> {
    static LOCK: OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> = OnceLock::new();
    LOCK.get_or_init(Default::default).clone()
}

/// A headless Chromium session and its chromedriver.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Browser {
    /// Starts chromedriver and a browser window of `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let turn = one_at_a_time().lock_owned().await;
        let (chromium, chromedriver) = match installed() {
            Ok(paths) => paths.clone(),
            Err(e) => panic!("{e}"),
        };
        let port = super::free_port();
        let log = std::env::temp_dir().join(format!("fengqiao-chromedriver-{port}.log"));
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile folder");
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-extensions".into(),
            // The nodes' certificates come from the test's own CA.
            "--ignore-certificate-errors".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={width},{height}"),
            "--lang=zh-CN".into(),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), serde_json::json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        let mut driver = driver;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("no WebDriver session from chromedriver: {e}\n{log}");
                }
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
            _turn: turn,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The element `css`, waited for.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css:?}: {e}; page:\n{}", self.text_now()))
    }

    /// The elements `css` (none is fine).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
    }

    /// The page's visible text, for messages (best effort, synchronous context).
    fn text_now(&self) -> String {
        String::from("(see the test's earlier output)")
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.find("body").await.text().await.unwrap_or_default()
    }

    /// The page's HTML.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap_or_default()
    }

    /// Types `value` into the control whose `<label>` text is exactly `label` (the label's
    /// `for` names it): how a person finds a field.
    pub async fn fill(&self, label: &str, value: &str) {
        let control = self.labelled(label).await;
        control.clear().await.ok();
        control
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("type into {label}: {e}"));
    }

    /// Chooses the option whose text is `option` in the `<select>` labelled `label`.
    pub async fn choose(&self, label: &str, option: &str) {
        let select = self.labelled(label).await;
        select
            .select_by_label(option)
            .await
            .unwrap_or_else(|e| panic!("choose {option} in {label}: {e}"));
    }

    /// The control a `<label>` with exactly this text points to.
    pub async fn labelled(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space(.)='{label}']");
        let label_el = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no label {label:?}: {e}"));
        let id = label_el
            .attr("for")
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("label {label:?} has no `for`"));
        self.find(&format!("[id='{id}']")).await
    }

    /// Clicks the button whose text is exactly `text` (the first one).
    pub async fn press(&self, text: &str) {
        self.button(text)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {text}: {e}"));
    }

    /// The button whose text is exactly `text`.
    pub async fn button(&self, text: &str) -> Element {
        let xpath = format!("//button[normalize-space(.)='{text}']");
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {text:?}: {e}"))
    }

    /// Whether a button with exactly this text is on the page.
    pub async fn has_button(&self, text: &str) -> bool {
        let xpath = format!("//button[normalize-space(.)='{text}']");
        !self
            .client
            .find_all(Locator::XPath(&xpath))
            .await
            .unwrap_or_default()
            .is_empty()
    }

    /// Clicks the link whose text is exactly `text`.
    pub async fn follow(&self, text: &str) {
        let xpath = format!("//a[normalize-space(.)='{text}']");
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no link {text:?}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("follow {text}: {e}"));
    }

    /// Waits until the page's text contains `needle`.
    pub async fn wait_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("the page never showed {needle:?}; it shows:\n{text}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the browser is at `path` (and query), after a click that navigates.
    pub async fn wait_path(&self, path: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the browser never reached {path}; it is at {now}:\n{}",
                    self.text().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until exactly `n` elements match `css` (a page re-rendered by a post).
    pub async fn wait_count(&self, css: &str, n: usize) {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.all(css).await.len();
            if now == n {
                return;
            }
            if Instant::now() > deadline {
                panic!("{css}: {now} elements, never {n}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The current path (and query).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Signs in at `base` (the console's URL) as `username`.
    pub async fn sign_in(&self, base: &str, username: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.fill("用户名", username).await;
        self.fill("密码", password).await;
        self.press("登录").await;
    }

    /// Every form control without a label pointing at it (hidden inputs and buttons aside).
    pub async fn unlabelled_controls(&self) -> Vec<String> {
        let script = r#"
            const out = [];
            for (const el of document.querySelectorAll('input, select, textarea')) {
                if (el.type === 'hidden' || el.type === 'submit') continue;
                const label = el.id && document.querySelector('label[for="' + el.id + '"]');
                if (!label || !/[\u4e00-\u9fff]/.test(label.textContent)) out.push(el.name || el.outerHTML);
            }
            return out;"#;
        let v = self.client.execute(script, vec![]).await.expect("script");
        serde_json::from_value(v).unwrap_or_default()
    }

    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
