#!/usr/bin/env bash
# Builds the Debian package with dpkg-deb (no debhelper).
#   tools/build-deb.sh BINARY GENERATED_DIR OUT_DIR
# BINARY: the oneha executable (stripped into the package when `strip` exists);
# GENERATED_DIR: output of `cargo run --example gen-docs -- DIR` (completions/, man/);
# OUT_DIR: where oneha_VERSION_ARCH.deb is written. Prints the package path.
# DEB_COMPRESS (xz, gzip, zstd, none; default xz) selects dpkg-deb's compression.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BINARY GENERATED_DIR OUT_DIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$1 gen=$2 out=$3
[ -x "$bin" ] || { echo "build-deb: $bin is not an executable: build it first" >&2; exit 2; }
[ -d "$gen/man" ] && [ -d "$gen/completions" ] || {
  echo "build-deb: $gen has no man/ or completions/: run cargo run --example gen-docs -- $gen" >&2
  exit 2
}
version=$("$bin" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/oneha

install -D -m 0755 "$bin" "$pkg/usr/sbin/oneha"
if command -v strip >/dev/null; then strip --strip-unneeded "$pkg/usr/sbin/oneha"; fi
# OpenNebula's hook manager runs a program path: under this name oneha is `oneha host-error`.
ln -s oneha "$pkg/usr/sbin/oneha-host-error"
install -D -m 0644 "$root/deploy/opennebula/host_error.hook" \
  "$pkg/usr/share/oneha/opennebula/host_error.hook"
# Grafana dashboard and Prometheus alert rules (docs/install.md, "Dashboards and alerts").
install -D -m 0644 "$root/deploy/grafana/oneha-dashboard.json" \
  "$pkg/usr/share/oneha/grafana/oneha-dashboard.json"
install -D -m 0644 "$root/deploy/prometheus/oneha-alerts.yml" \
  "$pkg/usr/share/oneha/prometheus/oneha-alerts.yml"
install -D -m 0644 "$root/deploy/oneha.service" "$pkg/lib/systemd/system/oneha.service"
install -d -m 0700 "$pkg/etc/oneha"
install -m 0644 "$root/deploy/examples/witness.yaml" "$pkg/etc/oneha/oneha.yaml.example"

doc=$pkg/usr/share/doc/oneha
install -d "$doc/examples"
install -m 0644 "$root/deploy/debian/copyright" "$doc/copyright"
for f in "$root"/docs/*.md; do
  # testing.md is for developers of oneha, not for operators.
  [ "$(basename "$f")" = testing.md ] || install -m 0644 "$f" "$doc/"
done
[ -f "$root/README.md" ] && install -m 0644 "$root/README.md" "$doc/"
install -m 0644 "$root"/deploy/examples/*.yaml "$doc/examples/"
install -m 0644 "$root/deploy/fence_virt.conf.example" "$root/deploy/firewall.md" "$doc/examples/"

install -D -m 0644 "$gen/completions/oneha.bash" "$pkg/usr/share/bash-completion/completions/oneha"
install -D -m 0644 "$gen/completions/_oneha" "$pkg/usr/share/zsh/vendor-completions/_oneha"
install -D -m 0644 "$gen/completions/oneha.fish" "$pkg/usr/share/fish/vendor_completions.d/oneha.fish"
install -d "$pkg/usr/share/man/man1"
for page in "$gen"/man/*.1; do
  gzip -9n -c "$page" > "$pkg/usr/share/man/man1/$(basename "$page").gz"
  chmod 0644 "$pkg/usr/share/man/man1/$(basename "$page").gz"
done

install -d -m 0755 "$pkg/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "$root/deploy/debian/$script" "$pkg/DEBIAN/$script"
done
echo /etc/oneha/oneha.yaml.example > "$pkg/DEBIAN/conffiles"
glibc=$(grep -ao 'GLIBC_2\.[0-9]*' "$pkg/usr/sbin/oneha" | sed 's/GLIBC_//' | sort -uV | tail -n1)
size=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat > "$pkg/DEBIAN/control" <<CONTROL
Package: oneha
Version: $version
Architecture: $arch
Maintainer: oneha maintainers <oneha@example.org>
Installed-Size: $size
Depends: libc6 (>= ${glibc:-2.34}), libgcc-s1
Suggests: fence-agents, fence-virt
Section: admin
Priority: optional
Description: cluster manager keeping an OpenNebula front-end alive
 oneha replaces rgmanager/CMAN on OpenNebula front-ends: agents elect an owner
 over Raft, move the floating IP with gratuitous ARP, run the opennebula and
 opennebula-sunstone units, fence the lost node (fence_xvm or fence agents)
 and report the VMs left in transient states after a failover.
CONTROL
(cd "$pkg" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -print0 \
  | sort -z | xargs -0 md5sum | sed 's| \./| |') > "$pkg/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/oneha_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$pkg" "$deb" >/dev/null
echo "$deb"
