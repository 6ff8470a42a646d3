//! A two-namespace lab for the fencing tests: a "hypervisor" (192.0.2.1) and a guest
//! (192.0.2.11) on a bridge of their own, with a multicast route; the real fence_virtd on the
//! hypervisor ([`start_virtd`]) and both fence_xvm clients in the guest. Everything is torn
//! down on drop, even when the test panics. Each test passes its own short prefix.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oneha::fence::xvm::{HashType, PowerState};
use oneha::fence::xvm_client::{self, XvmParams};
use oneha::fence::{Action, Answer, FenceError};

/// Address of the hypervisor namespace.
pub const HOST_IP: &str = "192.0.2.1";
/// Address of the guest namespace.
pub const GUEST_IP: &str = "192.0.2.11";
/// The key used by every fencing test.
pub const KEY: &[u8] = b"oneha-fence-test-key-ABCDEFGHIJKLMNOP";

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn must(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process killed (and reaped) on drop.
pub struct Proc {
    child: Child,
    /// Its stderr log.
    pub log: PathBuf,
}

impl Proc {
    /// Kills it now.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The lab. Drop it to tear everything down.
pub struct Lab {
    prefix: String,
    /// Scratch folder (keys, configs, logs).
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// Builds bridge `<prefix>br` and namespaces `<prefix>-host`, `<prefix>-guest`.
    pub fn new(prefix: &str) -> Lab {
        assert!(prefix.len() <= 8, "prefix too long for interface names");
        let lab = Lab {
            prefix: prefix.to_string(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        lab.teardown();
        let br = format!("{prefix}br");
        must(&[
            "ip",
            "link",
            "add",
            &br,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        must(&["ip", "link", "set", &br, "up"]);
        for (h, ip, n) in [("host", HOST_IP, 1), ("guest", GUEST_IP, 11)] {
            let ns = lab.ns(h);
            let veth = format!("{prefix}v{h}");
            must(&["ip", "netns", "add", &ns]);
            must(&[
                "ip",
                "link",
                "add",
                &veth,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &ns,
                "address",
                &format!("02:00:00:00:00:{n:02x}"),
            ]);
            must(&["ip", "link", "set", &veth, "master", &br, "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            must(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            must(&[
                "ip",
                "-n",
                &ns,
                "route",
                "add",
                "224.0.0.0/4",
                "dev",
                "eth0",
            ]);
        }
        std::fs::write(lab.key(), KEY).expect("write key");
        lab
    }

    /// Namespace name of `h` (`host` or `guest`).
    pub fn ns(&self, h: &str) -> String {
        format!("{}-{h}", self.prefix)
    }

    /// The shared key file.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("fence.key")
    }

    /// A file in the scratch folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `program args` inside namespace `h`, stderr and stdout to `<log>`.
    pub fn spawn(&self, h: &str, program: &Path, args: &[&str], log: &str) -> Proc {
        let log = self.path(log);
        let f = File::create(&log).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(h)])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().expect("dup"))
            .stderr(f)
            .spawn()
            .expect("spawn in namespace");
        Proc { child, log }
    }

    /// Runs a command in namespace `h`: (exit code, stdout, stderr).
    pub fn run(&self, h: &str, program: &Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns(h)])
            .arg(program)
            .args(args)
            .output()
            .expect("run in namespace");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Waits until something in namespace `h` listens on UDP `port`.
    pub fn wait_udp(&self, h: &str, port: u16, proc_: &Proc) {
        let t0 = Instant::now();
        loop {
            let (_, out, _) = self.run(h, Path::new("ss"), &["-ulnH", &format!("sport = :{port}")]);
            if !out.trim().is_empty() {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "nothing listens on UDP {port} in {h}; log:\n{}",
                proc_.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `f` on a thread inside namespace `h` with a fresh tokio runtime.
    pub fn block_on<T, F>(&self, h: &str, f: F) -> T
    where
        T: Send,
        F: std::future::Future<Output = T> + Send,
    {
        let path = format!("/run/netns/{}", self.ns(h));
        std::thread::scope(|s| {
            s.spawn(move || {
                let nsf = File::open(&path).expect("open netns");
                // SAFETY: setns on this thread only, with a valid namespace fd.
                let rc = unsafe { libc::setns(nsf.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(f)
            })
            .join()
            .expect("namespace thread")
        })
    }

    fn teardown(&self) {
        for h in ["host", "guest"] {
            sh(&["ip", "netns", "del", &self.ns(h)]);
        }
        sh(&["ip", "link", "del", &format!("{}br", self.prefix)]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Waits for a line `READY` in a log file.
pub fn wait_ready(p: &Proc) {
    let t0 = Instant::now();
    loop {
        if let Ok(f) = File::open(&p.log)
            && BufReader::new(f)
                .lines()
                .any(|l| l.is_ok_and(|l| l == "READY"))
        {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no READY; log:\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The unpacked Debian fence-virt tree.
pub fn fence_virt_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join(".work/fence-virt");
    assert!(
        d.join("usr/sbin/fence_virtd").is_file(),
        "{} is missing: run `bash tools/install-fence-virtd.sh` (make deps)",
        d.display()
    );
    d
}

/// Runs the stock fence_xvm in the guest: (exit code, stdout).
pub fn stock_fence_xvm(lab: &Lab, args: &[&str]) -> (i32, String) {
    let prog = fence_virt_dir().join("usr/sbin/fence_xvm");
    let key = lab.key();
    let mut all = vec!["-a", "225.0.0.12", "-k", key.to_str().expect("utf8 path")];
    all.extend_from_slice(args);
    let (code, out, _) = lab.run("guest", &prog, &all);
    (code, out)
}

/// A verdict both clients can be compared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Success, or status on.
    Ok,
    /// status: off.
    Off,
    /// Anything else.
    Fail,
}

/// The stock client's exit code as a verdict.
pub fn stock_verdict(code: i32) -> Verdict {
    match code {
        0 => Verdict::Ok,
        2 => Verdict::Off,
        _ => Verdict::Fail,
    }
}

/// Our answer as a verdict.
pub fn our_verdict(r: &Result<Answer, FenceError>) -> Verdict {
    match r {
        Ok(Answer::PowerOff) => Verdict::Off,
        Ok(_) => Verdict::Ok,
        Err(_) => Verdict::Fail,
    }
}

/// Parses list output (`name uuid on|off` lines) into sorted triples.
pub fn parse_listing(out: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = out
        .lines()
        .filter_map(|l| {
            let p: Vec<&str> = l.split_whitespace().collect();
            (p.len() == 3).then(|| (p[0].to_string(), p[1].to_string(), p[2].to_string()))
        })
        .collect();
    v.sort();
    v
}

/// Client parameters for the guest: sha256/sha256, 2 s timeout, 0.5 s retransmit.
pub fn params(lab: &Lab) -> XvmParams {
    XvmParams {
        group: "225.0.0.12".parse().expect("group"),
        port: 1229,
        key_file: lab.key(),
        hash: HashType::Sha256,
        auth: HashType::Sha256,
        source: GUEST_IP.parse().expect("guest ip"),
        timeout: Duration::from_secs(2),
        retransmit: Duration::from_millis(500),
    }
}

/// oneha's client, run in the guest.
pub fn ours(lab: &Lab, p: &XvmParams, action: Action, domain: &str) -> Result<Answer, FenceError> {
    lab.block_on("guest", xvm_client::request(p, action, domain, false))
}

/// The stock client, run in the guest with `-o op [-H domain]`.
pub fn stock(lab: &Lab, op: &str, domain: &str) -> (i32, String) {
    if domain.is_empty() {
        stock_fence_xvm(lab, &["-o", op, "-t", "5"])
    } else {
        stock_fence_xvm(lab, &["-o", op, "-H", domain, "-t", "5"])
    }
}

/// Runs `op` with both clients (ours first) and checks both give `want`.
pub fn both(lab: &Lab, op: Action, domain: &str, want: Verdict) {
    let r = ours(lab, &params(lab), op, domain);
    assert_eq!(our_verdict(&r), want, "oneha {op} {domain}: {r:?}");
    let (code, out) = stock(lab, op.name(), domain);
    assert_eq!(
        stock_verdict(code),
        want,
        "stock {op} {domain}: exit {code} {out}"
    );
}

/// `list` by both clients: checks they agree and returns the sorted listing.
pub fn both_list(lab: &Lab) -> Vec<(String, String, String)> {
    let r = ours(lab, &params(lab), Action::List, "");
    let Ok(Answer::Hosts(hosts)) = r else {
        panic!("oneha list failed: {r:?}");
    };
    let mut mine: Vec<(String, String, String)> = hosts
        .iter()
        .map(|h| {
            let st = if h.state == PowerState::On {
                "on"
            } else {
                "off"
            };
            (h.domain.clone(), h.uuid.clone(), st.to_string())
        })
        .collect();
    mine.sort();
    let (code, out) = stock(lab, "list", "");
    assert_eq!(code, 0, "stock list: {out}");
    assert_eq!(mine, parse_listing(&out));
    mine
}

/// UUID of the mock hypervisor's domain `one1`.
pub const ONE1_UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e193f";
/// UUID of the mock hypervisor's domain `one2`.
pub const ONE2_UUID: &str = "6695eb01-f6a4-8304-79aa-97f2502e1940";

/// Starts the real fence_virtd in the hypervisor namespace: multicast listener on eth0
/// (225.0.0.12:1229, the lab's key, these `hash` and `auth`), libvirt backend on libvirt's
/// mock hypervisor (`test://`) with two running domains, `one1` and `one2`. Waits until it
/// listens. Each call starts from fresh domains (both on).
pub fn start_virtd(lab: &Lab, hash: &str, auth: &str) -> Proc {
    let root = fence_virt_dir();
    let nodes = lab.path("nodes.xml");
    let mut xml = String::from("<node>\n");
    for (name, uuid) in [("one1", ONE1_UUID), ("one2", ONE2_UUID)] {
        xml.push_str(&format!(
            "<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory>8192</memory>\
             <vcpu>1</vcpu><os><type>hvm</type></os></domain>\n"
        ));
    }
    xml.push_str("</node>\n");
    std::fs::write(&nodes, xml).expect("write nodes.xml");
    let conf = lab.path("fence_virt.conf");
    std::fs::write(
        &conf,
        format!(
            "fence_virtd {{ listener = \"multicast\"; backend = \"libvirt\"; \
             module_path = \"{}\"; }}\n\
             listeners {{ multicast {{ key_file = \"{}\"; address = \"225.0.0.12\"; \
             port = \"1229\"; interface = \"eth0\"; family = \"ipv4\"; hash = \"{hash}\"; \
             auth = \"{auth}\"; }} }}\n\
             backends {{ libvirt {{ uri = \"test://{}\"; }} }}\n",
            root.join("usr/lib/x86_64-linux-gnu/fence-virt").display(),
            lab.key().display(),
            nodes.display()
        ),
    )
    .expect("write fence_virt.conf");
    // Each daemon gets its own pid file: fence_virtd refuses to start beside a live one.
    let pid = lab.path("fence_virtd.pid");
    let p = lab.spawn(
        "host",
        &root.join("usr/sbin/fence_virtd"),
        &[
            "-F",
            "-f",
            conf.to_str().expect("utf-8 path"),
            "-p",
            pid.to_str().expect("utf-8 path"),
            "-d1",
        ],
        "fence_virtd.log",
    );
    lab.wait_udp("host", 1229, &p);
    p
}
