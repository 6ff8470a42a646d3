//! The Debian package: built by tools/build-deb.sh (what `make deb` runs) from this build's
//! binary and the completions and man pages generated from the CLI definition; `dpkg-deb -c`
//! lists the expected files; `dpkg -i --root` into an empty root installs them, runs the
//! postinst (state directory 0700) and keeps the example config as a conffile; purge removes
//! the state.

#[path = "../examples/gen-docs.rs"]
mod gen_docs;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ONEHA: &str = env!("CARGO_BIN_EXE_oneha");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const EXPECTED: [&str; 15] = [
    "./usr/sbin/oneha",
    "./usr/share/oneha/opennebula/host_error.hook",
    "./usr/share/oneha/grafana/oneha-dashboard.json",
    "./usr/share/oneha/prometheus/oneha-alerts.yml",
    "./lib/systemd/system/oneha.service",
    "./etc/oneha/oneha.yaml.example",
    "./usr/share/doc/oneha/copyright",
    "./usr/share/doc/oneha/runbook.md",
    "./usr/share/doc/oneha/migrating-from-rgmanager.md",
    "./usr/share/doc/oneha/examples/two-node.yaml",
    "./usr/share/doc/oneha/examples/fence_virt.conf.example",
    "./usr/share/bash-completion/completions/oneha",
    "./usr/share/zsh/vendor-completions/_oneha",
    "./usr/share/fish/vendor_completions.d/oneha.fish",
    "./usr/share/man/man1/oneha.1.gz",
];

#[test]
fn package_lists_installs_and_purges() {
    let tmp = tempfile::tempdir().unwrap();
    let generated = tmp.path().join("generated");
    let files = gen_docs::generate(&generated).unwrap();
    assert!(
        files.iter().any(|f| f.ends_with("oneha-status.1")),
        "{files:?}"
    );
    assert!(
        !files
            .iter()
            .any(|f| f.to_string_lossy().contains("oneha-help"))
    );
    let bash = std::fs::read_to_string(generated.join("completions/oneha.bash")).unwrap();
    assert!(bash.contains("fence-ack") && bash.contains("check-config"));

    let out = tmp.path().join("out");
    let deb = run(Command::new("bash")
        .arg(Path::new(ROOT).join("tools/build-deb.sh"))
        .arg(ONEHA)
        .arg(&generated)
        .arg(&out)
        .env("DEB_COMPRESS", "gzip"));
    let deb = deb.trim();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.contains(&format!("/oneha_{version}_")) && deb.ends_with(".deb"),
        "{deb}"
    );

    let listing = run(Command::new("dpkg-deb").args(["-c", deb]));
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    for f in EXPECTED {
        assert!(
            paths.contains(&f),
            "{f} missing from the package:\n{listing}"
        );
    }
    assert!(paths.contains(&"./usr/share/man/man1/oneha-stuck-vms.1.gz"));
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("testing.md") || p.contains("oneha-testkit"))
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x root/root") && l.ends_with("./usr/sbin/oneha"))
    );
    assert_eq!(
        run(Command::new("dpkg-deb").args(["-f", deb, "Package"])).trim(),
        "oneha"
    );
    assert_eq!(
        run(Command::new("dpkg-deb").args(["-f", deb, "Version"])).trim(),
        version
    );
    assert!(run(Command::new("dpkg-deb").args(["-f", deb, "Depends"])).contains("libc6 (>= 2."));

    // Install into an empty root (no chroot: scripts run with DPKG_ROOT set).
    let root = tmp.path().join("root");
    let db = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(db.join(d)).unwrap();
    }
    std::fs::write(db.join("status"), "").unwrap();
    std::fs::write(db.join("available"), "").unwrap();
    let root_arg = format!("--root={}", root.display());
    let dpkg = |args: &[&str]| {
        run(Command::new("dpkg")
            .arg(&root_arg)
            .args(["--force-script-chrootless", "--force-depends"])
            .args(args))
    };
    dpkg(&["-i", deb]);
    for f in EXPECTED {
        assert!(root.join(&f[2..]).is_file(), "{f} not installed");
    }
    let version_out = run(Command::new(root.join("usr/sbin/oneha")).arg("--version"));
    assert_eq!(version_out.trim(), format!("oneha {version}"));
    // The hook manager runs a program path: under this name oneha is `oneha host-error`.
    let hook = root.join("usr/sbin/oneha-host-error");
    assert_eq!(
        std::fs::read_link(&hook).unwrap(),
        std::path::Path::new("oneha")
    );
    let help = run(Command::new(&hook).arg("--help"));
    assert!(help.contains("ARGUMENTS_STDIN=yes"), "{help}");
    let state = std::fs::metadata(root.join("var/lib/oneha")).unwrap();
    assert!(state.is_dir());
    assert_eq!(
        state.permissions().mode() & 0o777,
        0o700,
        "postinst: /var/lib/oneha 0700"
    );
    let etc = std::fs::metadata(root.join("etc/oneha")).unwrap();
    assert_eq!(etc.permissions().mode() & 0o777, 0o700);
    let conffiles = std::fs::read_to_string(db.join("info/oneha.conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/oneha/oneha.yaml.example");
    let status = run(Command::new("dpkg").arg(&root_arg).args(["-s", "oneha"]));
    assert!(status.contains("Status: install ok installed"), "{status}");
    // The unit and the example in the package are the ones in deploy/.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/oneha.service")).unwrap();
    assert_eq!(
        unit,
        std::fs::read_to_string(Path::new(ROOT).join("deploy/oneha.service")).unwrap()
    );

    dpkg(&["--purge", "oneha"]);
    assert!(
        !root.join("var/lib/oneha").exists(),
        "purge keeps /var/lib/oneha"
    );
    assert!(!root.join("usr/sbin/oneha").exists());
}
