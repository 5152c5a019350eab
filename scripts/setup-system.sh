#!/usr/bin/env bash
# Installs the Debian packages kdp needs. Idempotent and quiet when everything is present.
# Usage: scripts/setup-system.sh [group ...]   groups: core (default), cni, runtime, k8s, bench, all
# core    : what the data plane and the lab use (ip, iptables, nft, conntrack, dig, curl, openssl)
# cni     : reference CNI plugins (to test against host-local/bridge/portmap)
# runtime : podman + runc + busybox-static (real container runtime e2e)
# k8s     : kubectl (second real client against the API double)
# bench   : reference programs measured side by side (dnsmasq, dnsperf, nginx, haproxy, wrk, hyperfine)
set -euo pipefail

declare -A PKGS=(
  [core]="iproute2 iputils-ping iptables nftables conntrack dnsutils curl procps util-linux kmod openssl"
  [cni]="containernetworking-plugins"
  [runtime]="podman runc busybox-static containernetworking-plugins"
  [k8s]="kubernetes-client"
  [bench]="dnsmasq-base dnsperf nginx-light haproxy wrk hyperfine"
)
# a command that proves a package is present (cheaper than dpkg for the common case)
declare -A PROBE=(
  [iproute2]="ip" [iputils-ping]="ping" [iptables]="iptables-restore" [nftables]="nft" [conntrack]="conntrack" [dnsutils]="dig"
  [curl]="curl" [procps]="sysctl" [util-linux]="nsenter" [kmod]="modprobe" [openssl]="openssl"
  [podman]="podman" [runc]="runc" [busybox-static]="busybox" [kubernetes-client]="kubectl"
  [dnsmasq-base]="dnsmasq" [dnsperf]="dnsperf" [nginx-light]="nginx" [haproxy]="haproxy" [wrk]="wrk" [hyperfine]="hyperfine"
)

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(core)
if [ "${groups[0]}" = all ]; then groups=(core cni runtime k8s bench); fi

missing=()
for g in "${groups[@]}"; do
  [ -n "${PKGS[$g]+x}" ] || { echo "setup-system: unknown group '$g'" >&2; exit 2; }
  for p in ${PKGS[$g]}; do
    if [ -n "${PROBE[$p]+x}" ]; then
      PATH="$PATH:/usr/sbin:/sbin" command -v "${PROBE[$p]}" >/dev/null 2>&1 && continue
    elif [ "$p" = containernetworking-plugins ]; then
      [ -x /usr/lib/cni/host-local ] && continue
    fi
    missing+=("$p")
  done
done
[ ${#missing[@]} -eq 0 ] && exit 0
# de-duplicate
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" != 0 ]; then
  echo "setup-system: missing Debian packages: ${missing[*]} (run as root: scripts/setup-system.sh ${groups[*]})" >&2
  exit 1
fi
echo "setup-system: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# refresh the package lists when they are absent or older than a day
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  apt-get update -qq >&2
fi
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
