//! One `fqnode` under test: a fresh CA and data folder, the node's config, the process
//! started and its ready line read; killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fengqiao_node::code::NodeCode;
use fengqiao_node::identity::Role;
use fengqiao_node::{pki, tls};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) struct BenchNode {
    child: Child,
    /// The node's `fengqiao-ready` line.
    ready: String,
    code: NodeCode,
    dir: tempfile::TempDir,
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl BenchNode {
    /// Starts node `code` on loopback (any free ports) with `top` (top-level keys, e.g.
    /// `web_listen = "127.0.0.1:0"`) and `sections` (TOML sections) added to its config;
    /// logs at `warn`.
    pub(crate) fn start(
        fqnode: &Path,
        code: &str,
        top: &str,
        sections: &str,
    ) -> Result<BenchNode, BoxError> {
        let dir = tempfile::tempdir()?;
        let code = NodeCode::parse(code)?;
        pki::init_ca(dir.path())?;
        let node_cert = pki::issue_node(dir.path(), &code, &[])?;
        let config = dir.path().join("node.toml");
        std::fs::write(
            &config,
            format!(
                "code = \"{code}\"\nlisten = \"127.0.0.1:0\"\nfederation_listen = \"127.0.0.1:0\"\n{top}\n\
                 data_dir = \"{}\"\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n[log]\nlevel = \"warn\"\n{sections}\n",
                dir.path().join("data").display(),
                dir.path().join("ca.pem").display(),
                node_cert.cert.display(),
                node_cert.key.display()
            ),
        )?;
        let mut child = Command::new(fqnode)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", fqnode.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.starts_with("fengqiao-ready") {
                    let _ = tx.send(line);
                }
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("fqnode did not start within 60 s".into());
            }
        };
        Ok(BenchNode {
            child,
            ready,
            code,
            dir,
        })
    }

    /// The address the ready line gives for `name` (`listen`, `web`, `public`, ...).
    pub(crate) fn addr(&self, name: &str) -> Result<String, BoxError> {
        Ok(self
            .ready
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .ok_or_else(|| format!("no {name} in the ready line {:?}", self.ready))?
            .to_owned())
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CA certificate the node's certificate chains to.
    pub(crate) fn ca(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A new operator certificate of this node, as TLS files for a client.
    pub(crate) fn operator(&self, role: Role, user: &str) -> Result<tls::TlsFiles, BoxError> {
        let issued = pki::issue_operator(self.dir.path(), &self.code, role, user)?;
        Ok(tls::TlsFiles {
            ca: self.ca(),
            cert: issued.cert,
            key: issued.key,
        })
    }
}
