//! A simulated BMC: OpenIPMI's `ipmi_sim` (Debian `openipmi`) in a namespace of its own on
//! the switch, as a BMC sits on the management LAN. It speaks real IPMI over LAN (RMCP and
//! RMCP+) on UDP 623, so the stock `fence_ipmilan` (Debian `fence-agents`, through
//! `ipmitool`) fences with it; its chassis power control runs the power script of the
//! hypervisor it belongs to (see [`super::Hypervisor`]).
//!
//! `ipmi_sim` 2.0.33 does not answer "Get Channel Cipher Suites", which `ipmitool` asks first
//! unless given a cipher suite: every call then waits about 14 s for that answer before it
//! goes on. Give agents cipher suite 3 (`-C 3`, `cipher=3`; see [`Bmc::agent_options`]).

use std::fmt;
use std::fs;
use std::ops::Deref;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cmd::CmdOutput;
use super::host::Host;
use super::wait_until;

/// UDP port of IPMI over LAN (RMCP), where every BMC answers.
pub const IPMI_PORT: u16 = 623;
/// The cipher suite agents must ask for (`ipmitool -C`, fence agents' `cipher=`).
pub const CIPHER_SUITE: &str = "3";
/// How long a BMC may take to answer for the first time.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What a test chooses for a BMC: its number on the switch (address 192.0.2.N) and the
/// credentials of its administrator account. `Debug` never shows the password.
#[derive(Clone)]
pub struct BmcSpec {
    pub(super) number: u8,
    pub(super) user: String,
    pub(super) password: String,
}

impl BmcSpec {
    /// A BMC at 192.0.2.`number` with one administrator, `user` / `password`. IPMI
    /// limits: user 1-16 characters, password 1-20; letters, digits and `-_.@%+=` only
    /// (they go into `lan.conf` between quotes).
    pub fn new(number: u8, user: &str, password: &str) -> BmcSpec {
        let allowed = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@%+=".contains(c))
        };
        assert!(
            (1..=16).contains(&user.len()) && allowed(user),
            "BMC user `{user}`: use 1-16 letters, digits or -_.@%+="
        );
        assert!(
            (1..=20).contains(&password.len()) && allowed(password),
            "BMC password: use 1-20 letters, digits or -_.@%+= (IPMI 2.0 limit)"
        );
        BmcSpec {
            number,
            user: user.to_string(),
            password: password.to_string(),
        }
    }
}

impl fmt::Debug for BmcSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BmcSpec")
            .field("number", &self.number)
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// A running simulated BMC. Dereferences to its [`Host`] (its own namespace and cable:
/// `bmc.link_down()` makes it unreachable while the machine it manages runs on).
/// Cheap to clone.
#[derive(Clone)]
pub struct Bmc {
    inner: Arc<BmcInner>,
}

struct BmcInner {
    host: Host,
    user: String,
    password: String,
    dir: PathBuf,
    cgroup: PathBuf,
    sim: Mutex<Option<Child>>,
}

impl Deref for Bmc {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.inner.host
    }
}

impl Bmc {
    /// Writes the BMC's files under `dir` (`lan.conf` and `password` mode 0600, `sim.emu`,
    /// `state/`); `machine` names it, `power_script` is its chassis power (`startcmd`).
    /// Starts nothing: see [`Bmc::start`].
    pub(super) fn create(
        host: Host,
        spec: &BmcSpec,
        machine: &str,
        dir: &Path,
        cgroup: PathBuf,
        power_script: &Path,
    ) -> Bmc {
        fs::create_dir_all(dir.join("state"))
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let secret = |name: &str, text: &str| {
            let path = dir.join(name);
            fs::write(&path, "").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
            fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        };
        secret(
            "lan.conf",
            &lan_conf(machine, &host, spec, &power_script.display().to_string()),
        );
        secret("password", &spec.password);
        let emu = dir.join("sim.emu");
        fs::write(&emu, SIM_EMU).unwrap_or_else(|e| panic!("write {}: {e}", emu.display()));
        Bmc {
            inner: Arc::new(BmcInner {
                host,
                user: spec.user.clone(),
                password: spec.password.clone(),
                dir: dir.to_path_buf(),
                cgroup,
                sim: Mutex::new(None),
            }),
        }
    }

    /// Starts `ipmi_sim` in the BMC's namespace and cgroup (its power script, started by
    /// it, lives there too) and waits until it answers IPMI (`startnow`: the machine is
    /// powered on at once).
    pub(super) fn start(&self) {
        let cg = &self.inner.cgroup;
        fs::create_dir_all(cg).unwrap_or_else(|e| panic!("mkdir {}: {e}", cg.display()));
        let d = &self.inner.dir;
        // nsenter (not `ip netns exec`) keeps the machine's /sys, so the power script can
        // use cgroup files.
        let script = format!(
            "echo $$ > {cg}/cgroup.procs && exec nsenter --net=/run/netns/{ns} \
             ipmi_sim -c {lan} -f {emu} -s {state} -n",
            cg = cg.display(),
            ns = self.ns(),
            lan = d.join("lan.conf").display(),
            emu = d.join("sim.emu").display(),
            state = d.join("state").display(),
        );
        let log = self.inner.dir.join("ipmi_sim.log");
        let child = super::cmd::spawn_detached(&["sh", "-c", &script], &log)
            .unwrap_or_else(|e| panic!("cannot start ipmi_sim: {e}; install openipmi (make deps)"));
        *self.sim() = Some(child);
        let mut last = None;
        let up = wait_until(START_TIMEOUT, || {
            let out = self.chassis_power("status");
            let ok = out.ok();
            last = Some(out);
            ok
        });
        assert!(
            up,
            "BMC {} does not answer IPMI (is openipmi installed? make deps): {:?}\n\
             ipmi_sim log:\n{}",
            self.name(),
            last,
            self.log()
        );
    }

    /// The administrator's user name.
    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// The administrator's password, for the test to hand to the agent under test (on
    /// stdin, see [`Bmc::agent_input`]); never print it.
    pub fn password(&self) -> &str {
        &self.inner.password
    }

    /// The options a fence agent (`fence_ipmilan`) needs for this BMC, as `key=value`
    /// pairs for its stdin or a oneha fence device: `ip`, `username`, `password`,
    /// `lanplus=1`, `cipher=3`.
    pub fn agent_options(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ip", self.ip().to_string()),
            ("username", self.user().to_string()),
            ("password", self.password().to_string()),
            ("lanplus", "1".to_string()),
            ("cipher", CIPHER_SUITE.to_string()),
        ]
    }

    /// What to write to a fence agent's stdin (run without arguments) for `action`
    /// (`status`, `off`, `on`, `reboot`): one `key=value` per line, the password among
    /// them, so it never shows in `ps`. This is how oneha's fence-agent adapter calls
    /// agents.
    pub fn agent_input(&self, action: &str) -> String {
        let mut text = format!("action={action}\n");
        for (k, v) in self.agent_options() {
            text.push_str(&format!("{k}={v}\n"));
        }
        text
    }

    /// `ipmitool` against this BMC over the LAN from the BMC's own namespace (so it works
    /// with the BMC's cable pulled), the password read from a file (never in argv).
    pub fn ipmitool(&self, args: &[&str]) -> CmdOutput {
        let ip = self.ip().to_string();
        let pw = self.inner.dir.join("password").display().to_string();
        let mut argv = vec![
            "ipmitool",
            "-I",
            "lanplus",
            "-C",
            CIPHER_SUITE,
            "-H",
            &ip,
            "-U",
            &self.user(),
            "-f",
            &pw,
            "-N",
            "1",
            "-R",
            "2",
        ];
        argv.extend_from_slice(args);
        self.exec(&argv)
    }

    /// `chassis power ACTION` (`status`, `on`, `off`) through [`Bmc::ipmitool`].
    pub fn chassis_power(&self, action: &str) -> CmdOutput {
        self.ipmitool(&["chassis", "power", action])
    }

    /// What `ipmi_sim` printed.
    pub fn log(&self) -> String {
        fs::read_to_string(self.inner.dir.join("ipmi_sim.log")).unwrap_or_default()
    }

    /// The BMC's cgroup: `ipmi_sim` and the power script of its machine.
    pub fn cgroup(&self) -> &Path {
        &self.inner.cgroup
    }

    /// Kills `ipmi_sim` (reaped here), then whatever else is left in its cgroup (the power
    /// script, if it outlived a teardown's power-off), removes the cgroup; never panics.
    pub(super) fn teardown(&self) {
        if let Some(mut child) = self.sim().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        super::hypervisor::kill_cgroup(&self.inner.cgroup);
        super::node::remove_cgroup(&self.inner.cgroup);
    }

    fn sim(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        super::topology::lock(&self.inner.sim)
    }
}

/// The BMC's management controller for `ipmi_sim -f`.
const SIM_EMU: &str = "mc_setbmc 0x20\n\
    mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr\n\
    sel_enable 0x20 1000 0x0a\n\
    mc_enable 0x20\n";

/// `lan.conf` of a BMC: LAN channel on its address, port 623; IPMI 1.5 sessions only with
/// MD5 authentication (never `none`/`straight`: the password must matter); a VM serial
/// port on the BMC's loopback (without one, `ipmi_sim` never signals the power process);
/// power-off sends SIGTERM after 1 s and SIGKILL 5 s later; one admin user.
fn lan_conf(machine: &str, host: &Host, spec: &BmcSpec, power_script: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    host.ns().hash(&mut h);
    let guid = format!("{:016x}{:016x}", h.finish(), h.finish().rotate_left(17));
    format!(
        "name \"{machine}\"\n\
         set_working_mc 0x20\n\
         \x20 startlan 1\n\
         \x20   addr {ip} {IPMI_PORT}\n\
         \x20   priv_limit admin\n\
         \x20   allowed_auths_callback md5\n\
         \x20   allowed_auths_user md5\n\
         \x20   allowed_auths_operator md5\n\
         \x20   allowed_auths_admin md5\n\
         \x20   guid {guid}\n\
         \x20 endlan\n\
         \x20 serial 15 127.0.0.1 9002 codec VM\n\
         \x20 startcmd \"{power_script}\"\n\
         \x20 startnow true\n\
         \x20 poweroff_wait 1\n\
         \x20 kill_wait 5\n\
         \x20 user 2 true \"{user}\" \"{password}\" admin 10 md5\n",
        ip = host.ip(),
        user = spec.user,
        password = spec.password,
    )
}
