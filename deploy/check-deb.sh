#!/usr/bin/env bash
# Builds the Debian package (`cargo deb -p circus-node`), checks its
# contents, then, as root on a Debian-like system, installs it, checks what
# was installed, removes it and purges it, checking that nothing is left.
# Called by .ci/run; CIRCUS_REQUIRE_NETNS=1 (CI) makes a missing
# privilege or tool an error instead of a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deb: $*" >&2; exit 1; }
skip() {
  if [ "${CIRCUS_REQUIRE_NETNS:-}" = 1 ]; then fail "$* (CIRCUS_REQUIRE_NETNS=1)"; fi
  echo "check-deb: skipped the install check: $*"
  exit 0
}

command -v dpkg-deb >/dev/null || skip "dpkg-deb is missing (not a Debian system)"
if ! command -v cargo-deb >/dev/null 2>&1; then
  cargo install cargo-deb --locked
fi

deb=$(cargo deb -p circus-node --fast | tail -n 1)
[ -f "$deb" ] || fail "cargo deb printed no package path (got: $deb)"
echo "check-deb: built $deb"

contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/circus-node \
            ./usr/lib/systemd/system/circus-client.service \
            ./usr/lib/systemd/system/circus-gateway.service \
            ./usr/share/doc/circus-node/examples/client.toml \
            ./usr/share/doc/circus-node/examples/gateway.toml; do
  grep -q " $path\$" <<<"$contents" || fail "$path is not in the package"
done
if grep -q " ./etc/" <<<"$contents"; then
  fail "the package ships files in /etc; keys and configs there are the admin's"
fi

# The units must stay hardened (issue 18: exposure 2.5 or below).
command -v systemd-analyze >/dev/null || skip "systemd-analyze is missing"
for unit in circus-client circus-gateway; do
  score=$(systemd-analyze security --offline=true "deploy/$unit.service" 2>&1 |
          sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
  [ -n "$score" ] || fail "no exposure score for $unit"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }' || fail "$unit exposure $score > 2.5"
  echo "check-deb: $unit exposure $score"
done

[ "$(id -u)" = 0 ] || skip "not root"
if dpkg -s circus-node >/dev/null 2>&1; then
  skip "circus-node is installed on this machine; not replacing it"
fi
if getent passwd circus >/dev/null; then
  skip "a user named circus exists already; not touching it"
fi
had_etc=no; [ -e /etc/circus ] && had_etc=yes

dpkg -i "$deb" >/dev/null
trap 'dpkg -P circus-node >/dev/null 2>&1 || true' EXIT

uid=$(id -u circus) || fail "no user circus after install"
[ "$uid" -lt 1000 ] || fail "circus is not a system user (uid $uid)"
if [ $had_etc = no ]; then
  [ "$(stat -c '%a %U %G' /etc/circus)" = "700 circus circus" ] ||
    fail "/etc/circus is $(stat -c '%a %U %G' /etc/circus), expected 700 circus circus"
fi
for unit in circus-client circus-gateway; do
  [ -f "/usr/lib/systemd/system/$unit.service" ] || fail "$unit.service not installed"
  grep -q '^ExecStart=/usr/bin/circus-node ' "/usr/lib/systemd/system/$unit.service" ||
    fail "$unit.service does not run /usr/bin/circus-node"
done
/usr/bin/circus-node --version | grep -q '^circus-node ' || fail "circus-node --version failed"
# The user can create its key where the units expect it.
runuser -u circus -- /usr/bin/circus-node keygen --out /etc/circus/check.key >/dev/null ||
  fail "user circus cannot write a key into /etc/circus"
rm -f /etc/circus/check.key

dpkg -r circus-node >/dev/null
for path in /usr/bin/circus-node /usr/lib/systemd/system/circus-client.service \
            /usr/lib/systemd/system/circus-gateway.service; do
  [ ! -e "$path" ] || fail "$path left after dpkg -r"
done
# What remains of the units are Debian's masks (links to /dev/null, made by
# deb-systemd-helper so that a unit an admin enabled cannot start without
# its binary); purge removes them.
for link in $(find /etc/systemd/system /usr/lib/systemd/system -name 'circus-*' 2>/dev/null); do
  [ "$(readlink "$link")" = /dev/null ] || fail "unit $link left after dpkg -r"
done
getent passwd circus >/dev/null || fail "dpkg -r removed the user (only purge may)"

dpkg -P circus-node >/dev/null
trap - EXIT
getent passwd circus >/dev/null && fail "user circus left after purge"
getent group circus >/dev/null && fail "group circus left after purge"
if [ $had_etc = no ] && [ -e /etc/circus ]; then fail "/etc/circus left after purge"; fi
leftover=$(find /etc/systemd/system /usr/lib/systemd/system -name 'circus-*' 2>/dev/null)
[ -z "$leftover" ] || fail "units left after purge: $leftover"
echo "check-deb: installed, checked, removed and purged $deb"
