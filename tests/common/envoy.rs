//! The Envoy process: started on a bootstrap (static or file-based LDS) on free ports with a
//! distinct `--base-id`, scraped, and stopped (its log kept when the test fails).

use super::bootstrap::*;
use super::scrape::*;
use super::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Distinct `--base-id` per Envoy: tests run in parallel, and other processes may run Envoys too.
/// 256 per process before one comes back: a test may keep an Envoy for a minute while another
/// starts dozens (a base id still held makes Envoy exit; [`start_with_config_args`] then retries).
fn next_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    20_000 + (std::process::id() % 10_000) * 256 + NEXT.fetch_add(1, Ordering::SeqCst) % 256
}

pub struct Envoy {
    child: Child,
    pub listen_port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
}

impl Envoy {
    pub fn start(opts: EnvoyOptions) -> Envoy {
        match Envoy::try_start(opts) {
            Ok(envoy) => envoy,
            Err(log) => panic!("Envoy did not become ready:\n{log}"),
        }
    }

    /// Starts Envoy; `Err(log)` if it exits or is not ready within 30 s.
    pub fn try_start(opts: EnvoyOptions) -> Result<Envoy, String> {
        let listen_port = free_port();
        let admin_port = free_port();
        let config = bootstrap(&opts, listen_port, admin_port);
        Envoy::start_with_config(&config, opts.concurrency, listen_port, admin_port)
    }

    /// Starts Envoy on a complete bootstrap whose ports the caller chose.
    pub fn start_with_config(
        config: &str,
        concurrency: u32,
        listen_port: u16,
        admin_port: u16,
    ) -> Result<Envoy, String> {
        start_with_config_args(config, concurrency, listen_port, admin_port, &[])
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listen_port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default()
    }

    /// Waits for the process to exit (for configs Envoy must refuse).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn scrape(&self) -> Metrics {
        scrape_url(&self.admin_url("/stats/prometheus"))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("Envoy log kept in {}", self.dir.display());
        }
    }
}

/// Starts Envoy on file-based LDS: the listener of `opts` in `<lds_dir>/lds.yaml`, with extra
/// command-line arguments (e.g. `["--drain-time-s", "1"]`). Its `listen_port` is the listener's.
pub fn start_lds(
    opts: &EnvoyOptions,
    lds_dir: &std::path::Path,
    extra_args: &[&str],
) -> Result<Envoy, String> {
    let (listen_port, admin_port) = (free_port(), free_port());
    push_lds(lds_dir, &lds_resources(opts, listen_port));
    let config = lds_bootstrap(opts, admin_port, lds_dir);
    start_with_config_args(
        &config,
        opts.concurrency,
        listen_port,
        admin_port,
        extra_args,
    )
}

/// [`Envoy::start_with_config`] with extra command-line arguments. A base id another Envoy
/// (of any process) still holds is the harness's problem, not the test's: tried again with the
/// next one.
pub fn start_with_config_args(
    config: &str,
    concurrency: u32,
    listen_port: u16,
    admin_port: u16,
    extra_args: &[&str],
) -> Result<Envoy, String> {
    let mut attempt = 0;
    loop {
        match start_once(config, concurrency, listen_port, admin_port, extra_args) {
            Err(log)
                if log.contains("unable to bind domain socket with base_id") && attempt < 5 =>
            {
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

fn start_once(
    config: &str,
    concurrency: u32,
    listen_port: u16,
    admin_port: u16,
    extra_args: &[&str],
) -> Result<Envoy, String> {
    let dir = temp_dir("envoy");
    let config_path = dir.join("envoy.yaml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.join("envoy.log")).unwrap();
    let child = Command::new(envoy_bin())
        .arg("-c")
        .arg(&config_path)
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--base-id", &next_base_id().to_string()])
        .args(["--log-level", "info"])
        .args(extra_args)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn envoy");
    let mut envoy = Envoy {
        child,
        listen_port,
        admin_port,
        dir,
    };
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = envoy.child.try_wait() {
            return Err(format!("envoy exited with {status}\n{}", envoy.log()));
        }
        if let Ok(mut resp) = agent().get(&envoy.admin_url("/ready")).call() {
            if resp.status() == 200
                && resp.body_mut().read_to_string().unwrap_or_default().trim() == "LIVE"
            {
                return Ok(envoy);
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("not ready after 30 s\n{}", envoy.log()));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A counter or gauge from the admin API's `/stats` text (e.g. `listener_manager.lds.update_rejected`).
pub fn admin_stat(envoy: &Envoy, name: &str) -> Option<u64> {
    let text = agent()
        .get(&envoy.admin_url(&format!("/stats?filter=^{name}$")))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(": ")?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls the scrape until `name{labels}` equals `want`, then returns the scrape.
pub fn wait_value(envoy: &Envoy, name: &str, labels: &[(&str, &str)], want: f64) -> Metrics {
    let mut last = None;
    let found = (0..100).find_map(|_| {
        let m = envoy.scrape();
        let v = m.value(name, labels);
        if v == Some(want) {
            return Some(m);
        }
        last = v;
        thread::sleep(Duration::from_millis(100));
        None
    });
    found.unwrap_or_else(|| panic!("{name}{labels:?}: want {want}, last seen {last:?}"))
}

/// Polls the scrape until histogram `name{labels}` has `want` observations (histograms show
/// after a stats flush, 1 s in the test bootstraps), then returns the scrape.
pub fn wait_histogram_count(
    envoy: &Envoy,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) -> Metrics {
    eventually(Duration::from_secs(15), "histogram flush", || {
        let m = envoy.scrape();
        (m.histogram_count(name, labels) == Some(want)).then_some(m)
    })
}
