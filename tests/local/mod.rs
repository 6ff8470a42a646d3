//! A cluster of real agent processes on loopback addresses (127.0.0.x), for tests of the
//! cluster core that need no network namespaces.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oneha::admin::{self, AdminRequest, AdminResponse};
use oneha::status::StatusReport;

/// One agent process.
pub struct Agent {
    pub name: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
}

/// A set of agents sharing a key, each with its own config, data dir and admin socket.
pub struct LocalCluster {
    pub dir: tempfile::TempDir,
    pub agents: Vec<Agent>,
}

/// Loopback address and port base unique to this test binary and test name.
fn base(test: &str) -> (u8, u16) {
    let mut h: u32 = 2166136261;
    for b in test.bytes().chain(std::process::id().to_le_bytes()) {
        h = (h ^ b as u32).wrapping_mul(16777619);
    }
    (((h >> 8) % 200) as u8 + 20, 20000 + (h % 20000) as u16)
}

impl LocalCluster {
    /// Writes configs for `roles` (`frontend`/`witness`) with the given extra YAML and
    /// starts every agent.
    pub fn start(test: &str, roles: &[&str], extra: &str) -> LocalCluster {
        Self::start_named(test, roles, extra, "test", "n")
    }

    /// As `start`, with the cluster named `cluster` and nodes `{prefix}1`, `{prefix}2`...
    pub fn start_named(
        test: &str,
        roles: &[&str],
        extra: &str,
        cluster: &str,
        prefix: &str,
    ) -> LocalCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("cluster.key");
        let st = Command::new(bin())
            .args(["keygen", key.to_str().expect("utf8")])
            .stdout(Stdio::null())
            .status()
            .expect("keygen");
        assert!(st.success(), "keygen failed");
        let (net, port) = base(test);
        let mut nodes = String::new();
        for (i, role) in roles.iter().enumerate() {
            nodes.push_str(&format!(
                "  - {{name: {prefix}{}, id: {}, address: \"127.0.{net}.{}:{}\", role: {role}}}\n",
                i + 1,
                i + 1,
                i + 1,
                port + i as u16
            ));
        }
        let two_node = if roles.len() == 2 {
            "two_node: true\n"
        } else {
            ""
        };
        let mut agents = Vec::new();
        for i in 1..=roles.len() {
            let config = dir.path().join(format!("n{i}.yaml"));
            let socket = dir.path().join(format!("n{i}.sock"));
            std::fs::write(
                &config,
                format!(
                    "cluster: {cluster}\nkey_file: {}\ndata_dir: {}\nadmin_socket: {}\n{two_node}{extra}nodes:\n{nodes}",
                    key.display(),
                    dir.path().join(format!("data{i}")).display(),
                    socket.display()
                ),
            )
            .expect("write config");
            agents.push(Agent {
                name: format!("{prefix}{i}"),
                config,
                socket,
                log: dir.path().join(format!("n{i}.log")),
                child: None,
            });
        }
        let mut c = LocalCluster { dir, agents };
        for i in 0..c.agents.len() {
            c.start_agent(i);
        }
        c
    }

    /// Starts agent `i` (0-based) if it is not running.
    pub fn start_agent(&mut self, i: usize) {
        let a = &mut self.agents[i];
        if a.child.is_some() {
            return;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&a.log)
            .expect("log");
        let child = Command::new(bin())
            .args(["--config", a.config.to_str().expect("utf8")])
            .args(["agent", "--node", &a.name])
            .env("RUST_LOG", "info,raft=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn agent");
        a.child = Some(child);
    }

    /// kill -9 agent `i`.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.agents[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM agent `i` and wait for it to exit; returns its exit status.
    pub fn term(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let mut c = self.agents[i].child.take()?;
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// Sends an admin request to agent `i`.
    pub fn call(&self, i: usize, req: &AdminRequest) -> Result<AdminResponse, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(admin::call(
            &self.agents[i].socket,
            req,
            Duration::from_secs(15),
        ))
    }

    /// Status of agent `i`, if it answers.
    pub fn status(&self, i: usize) -> Option<StatusReport> {
        let r = self.call(i, &AdminRequest::Status).ok()?;
        serde_json::from_value(r.result?).ok()
    }

    /// Indexes of running agents.
    pub fn running(&self) -> Vec<usize> {
        (0..self.agents.len())
            .filter(|&i| self.agents[i].child.is_some())
            .collect()
    }

    /// Waits until every running agent agrees on one leader; returns its index.
    pub fn wait_leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let leaders: Vec<Option<String>> = self
                .running()
                .iter()
                .map(|&i| self.status(i).and_then(|s| s.raft.leader))
                .collect();
            if let Some(Some(l)) = leaders.first()
                && leaders.iter().all(|x| x.as_deref() == Some(l.as_str()))
            {
                let i = self.index(l);
                if self.agents[i].child.is_some() {
                    return Some(i);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Index of node `name`.
    pub fn index(&self, name: &str) -> usize {
        self.agents
            .iter()
            .position(|a| a.name == name)
            .expect("known node")
    }

    /// The agent's log so far (for assertion messages).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.agents[i].log).unwrap_or_default()
    }

    /// Data directory of agent `i`.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("data{}", i + 1))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.agents.len() {
            self.kill9(i);
        }
        // A failed test shows what the agents said (its temp directory goes with it).
        if std::thread::panicking() {
            for (i, a) in self.agents.iter().enumerate() {
                let log = self.log(i);
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                eprintln!("--- last lines of {} ---\n{tail}", a.name);
            }
        }
    }
}

/// The oneha binary under test.
pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_oneha"))
}

/// Resident memory of process `pid` in kB (0 if it is gone).
pub fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
