#!/usr/bin/env bash
# Installs the Debian packages kdp needs. Idempotent and quiet when everything is present.
# Usage: scripts/setup-system.sh [group ...]   groups: core (default), cni, runtime, k8s, bench, profile, all
# core    : what the data plane and the lab use (ip, iptables, nft, conntrack, dig, curl, openssl), and a C
#           compiler for the native addons (scripts/build-native.ts), with nghttp2's header for the ingress's
#           HTTP/2 in the addon
# cni     : reference CNI plugins (to test against host-local/bridge/portmap)
# runtime : podman + runc + busybox-static (real container runtime e2e)
# k8s     : kubectl (second real client against the API double)
# bench   : reference programs measured side by side (dnsmasq, dnsperf, nginx, haproxy, wrk, h2load, hyperfine, iperf3)
# profile : strace (the ingress bench's --syscalls) and valgrind (bench:ingress-instructions); no test needs them
set -euo pipefail

declare -A PKGS=(
  [core]="iproute2 iputils-ping iptables nftables conntrack dnsutils curl procps util-linux kmod openssl gcc libc6-dev libnghttp2-dev"
  [cni]="containernetworking-plugins"
  [runtime]="podman runc busybox-static containernetworking-plugins"
  [k8s]="kubernetes-client"
  [bench]="dnsmasq-base dnsperf nginx-light haproxy wrk nghttp2-client hyperfine iperf3"
  [profile]="strace valgrind"
)
# a command that proves a package is present (cheaper than dpkg for the common case)
declare -A PROBE=(
  [iproute2]="ip" [iputils-ping]="ping" [iptables]="iptables-restore" [nftables]="nft" [conntrack]="conntrack" [dnsutils]="dig"
  [curl]="curl" [gcc]="cc" [procps]="sysctl" [util-linux]="nsenter" [kmod]="modprobe" [openssl]="openssl"
  [podman]="podman" [runc]="runc" [busybox-static]="busybox" [kubernetes-client]="kubectl"
  [dnsmasq-base]="dnsmasq" [dnsperf]="dnsperf" [nginx-light]="nginx" [haproxy]="haproxy" [wrk]="wrk" [nghttp2-client]="h2load" [hyperfine]="hyperfine" [iperf3]="iperf3" [strace]="strace" [valgrind]="callgrind_control"
)

groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(core)
if [ "${groups[0]}" = all ]; then groups=(core cni runtime k8s bench profile); fi

# KDP_SETUP_LOCK: the lock file that serializes installs (several test files, or several checkouts, may call
# this script at once; apt-get would fail at once on dpkg's lock otherwise)
LOCK=${KDP_SETUP_LOCK:-/run/lock/kdp-setup-system.lock}
# KDP_SETUP_DPKG_WAIT: seconds apt-get waits for dpkg's own lock (held by an apt run outside this script)
DPKG_WAIT=${KDP_SETUP_DPKG_WAIT:-600}

for g in "${groups[@]}"; do
  [ -n "${PKGS[$g]+x}" ] || { echo "setup-system: unknown group '$g'" >&2; exit 2; }
done

# fills missing with the packages of the requested groups whose probe fails (sorted, de-duplicated)
probe_missing() {
  missing=()
  local g p
  for g in "${groups[@]}"; do
    for p in ${PKGS[$g]}; do
      if [ -n "${PROBE[$p]+x}" ]; then
        PATH="$PATH:/usr/sbin:/sbin" command -v "${PROBE[$p]}" >/dev/null 2>&1 && continue
      elif [ "$p" = containernetworking-plugins ]; then
        [ -x /usr/lib/cni/host-local ] && continue
      elif [ "$p" = libc6-dev ]; then
        [ -e /usr/include/x86_64-linux-gnu/sys/socket.h ] || [ -e /usr/include/sys/socket.h ] && continue
      elif [ "$p" = libnghttp2-dev ]; then
        [ -e /usr/include/nghttp2/nghttp2.h ] && continue
      fi
      missing+=("$p")
    done
  done
  [ ${#missing[@]} -eq 0 ] || mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
}

probe_missing
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "setup-system: missing Debian packages: ${missing[*]} (run as root: scripts/setup-system.sh ${groups[*]})" >&2
  exit 1
fi
# one install at a time: wait for any other setup-system run, then look again (it may have installed ours)
exec 9>>"$LOCK"
if ! flock -n 9; then
  echo "setup-system: waiting for another setup-system run (lock $LOCK)" >&2
  flock 9
fi
probe_missing
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup-system: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt_opts=(-o "DPkg::Lock::Timeout=$DPKG_WAIT")
# refresh the package lists when they are absent or older than a day
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  apt-get "${apt_opts[@]}" update -qq >&2
fi
apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
