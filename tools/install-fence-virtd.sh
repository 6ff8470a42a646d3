#!/usr/bin/env bash
# Unpacks Debian's fence-virtd and fence-virt packages (the real fence_virtd daemon and the stock
# fence_xvm client) into .work/fence-virt/ for the interoperability tests. Nothing is installed
# system-wide and no service is started. Idempotent: re-running only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

DEST=.work/fence-virt
CACHE=.work/fence-virt-debs
if [ -x "$DEST/usr/sbin/fence_virtd" ] && [ -x "$DEST/usr/sbin/fence_xvm" ]; then
  echo "install-fence-virtd: $DEST present"
  exit 0
fi
mkdir -p "$CACHE" "$DEST"
(
  cd "$CACHE"
  if ! ls fence-virtd_*.deb fence-virt_*.deb >/dev/null 2>&1; then
    apt-get download fence-virtd fence-virt || {
      apt-get update -qq
      apt-get download fence-virtd fence-virt
    }
  fi
)
for deb in "$CACHE"/fence-virtd_*.deb "$CACHE"/fence-virt_*.deb; do
  dpkg -x "$deb" "$DEST"
done
test -x "$DEST/usr/sbin/fence_virtd"
test -x "$DEST/usr/sbin/fence_xvm"
echo "install-fence-virtd: unpacked into $DEST"
