//! A real Prometheus server on loopback scraping one target every second.
#![allow(dead_code)] // each test binary uses part of it

use crate::common::*;
use std::process::{Child, Command};
use std::thread;
use std::time::Duration;

pub struct Prometheus {
    process: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Prometheus {
    pub fn start(target: &str) -> Prometheus {
        let dir = temp_dir("prometheus");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: envoy\n  metrics_path: /stats/prometheus\n  static_configs:\n  - targets: ['{target}']\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package `prometheus`) on PATH");
        let prometheus = Prometheus {
            process: child,
            port,
            dir,
        };
        let ready = format!("http://127.0.0.1:{port}/-/ready");
        eventually(Duration::from_secs(30), "prometheus ready", || {
            agent()
                .get(&ready)
                .call()
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        });
        prometheus
    }

    /// Every series an instant query returns, or Prometheus's error.
    pub fn query_all(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let mut resp = agent()
            .get(&url)
            .query("query", promql)
            .call()
            .map_err(|e| e.to_string())?;
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let body: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if body["status"] != "success" {
            return Err(format!("{promql}: {body}"));
        }
        Ok(body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The single value of an instant query, if it has one.
    pub fn query(&self, promql: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let mut resp = agent().get(&url).query("query", promql).call().ok()?;
        let body: serde_json::Value =
            serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()?;
        assert_eq!(body["status"], "success", "{promql}: {body}");
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
