//! A Python virtual environment for the tests that check the node with independent clients:
//! `georeport` (Open311 GeoReport v2), `openpyxl` (reads and writes .xlsx) and
//! `prometheus-client` (its OpenMetrics parser reads /metrics), from PyPI. Made once per
//! machine under the temp folder (one install at a time across test processes), with the
//! machine's `python3` — installed from the distribution's packages (`python3 python3-venv`)
//! when it is missing and the tests run as root, as the browser is.

use std::path::PathBuf;
use std::process::Command;

/// The packages, pinned.
pub const PACKAGES: [&str; 3] = [
    "georeport==0.3.1",
    "openpyxl==3.1.5",
    "prometheus-client==0.21.1",
];

/// The venv's python3, with [`PACKAGES`] installed.
pub fn with_packages() -> PathBuf {
    let dir = std::env::temp_dir().join("fengqiao-test-venv");
    let python = dir.join("bin").join("python3");
    let lock = std::fs::File::create(std::env::temp_dir().join("fengqiao-test-venv.lock"))
        .expect("lock file");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&lock);
    // SAFETY: flock on a file descriptor this function owns for its whole duration.
    unsafe {
        libc::flock(fd, libc::LOCK_EX);
    }
    let ready = Command::new(&python)
        .args(["-c", "import georeport, openpyxl, prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let has_venv = Command::new("python3")
            .args(["-m", "venv", "--help"])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        // SAFETY: geteuid has no preconditions.
        if !has_venv && unsafe { libc::geteuid() } == 0 {
            eprintln!("installing python3 python3-venv from the distribution's packages");
            let script = "export DEBIAN_FRONTEND=noninteractive; \
                 apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null 2>&1 || \
                 (apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv)";
            let _ = Command::new("sh").args(["-c", script]).status();
        }
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3 -m venv (the tests need python3 with venv)");
        assert!(made.success(), "python3 -m venv failed");
        let pip = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PACKAGES)
            .status()
            .expect("pip");
        assert!(pip.success(), "pip install {PACKAGES:?} failed");
    }
    // SAFETY: as above.
    unsafe {
        libc::flock(fd, libc::LOCK_UN);
    }
    python
}
