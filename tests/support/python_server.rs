//! Starts a Python WSGI server (from the project's `.venv`, made by `make test`) on a free
//! 127.0.0.1 port, and stops it when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct PythonServer {
    child: Child,
    pub port: u16,
}

/// The virtualenv's interpreter: `$ATLAS_RUNNER_PYTHON`, else `.venv/bin/python`.
pub fn venv_python() -> PathBuf {
    let python = std::env::var_os("ATLAS_RUNNER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"));
    assert!(
        python.exists(),
        "{} does not exist: run `make test` (it creates .venv with the test tools) or set ATLAS_RUNNER_PYTHON",
        python.display()
    );
    python
}

impl PythonServer {
    /// Serves `app` (`module:attribute`) with `tests/support/serve_wsgi.py`.
    pub fn start(app: &str, extra_args: &[&str]) -> PythonServer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/serve_wsgi.py");
        let mut child = Command::new(venv_python())
            .arg(&script)
            .arg(app)
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Python server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("the Python server for {app} did not start within 60 s");
            }
        };
        let port = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("the Python server for {app} said {line:?} instead of LISTENING <port>")
            });
        PythonServer { child, port }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
