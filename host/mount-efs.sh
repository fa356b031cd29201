#!/usr/bin/env bash
# Mounts one Amazon EFS file system on this host: validated, idempotent, in fstab, verified.
#
# SSM Run Command runs it from the efs-automount-mount document, which passes its
# parameters as environment variables: SSM_FileSystemId, SSM_MountPath, SSM_Region,
# SSM_AccessPointId, SSM_MountTargetIp, SSM_ReadOnly, SSM_RequireTls, SSM_DnsWaitSeconds. Every value is
# checked again here and always quoted.
#
# Mount helper: amazon-efs-utils (`mount -t efs`, with tls; iam and accesspoint= for an
# access point) when installed, or installable with dnf/yum/apt-get; otherwise the kernel
# NFS client with EFS's recommended options. An access point needs efs-utils (TLS and IAM),
# and so does RequireTls: there is no plain NFS fallback for either.
#
# Exit codes (README: "The mount script"):
#   0  mounted, or already mounted
#   2  invalid input                                              permanent
#   3  another file system is mounted at the path, or fstab
#      mounts something else there; nothing is unmounted          permanent
#   4  no usable mount helper                                     permanent
#   5  mounted, but the mount does not verify (source, type,
#      write/read probe)                                          permanent
#   75 the name does not resolve and no IP was given, or the
#      mount failed or timed out                                  transient
# The last line of output is one JSON summary the Lambda logs.
set -euo pipefail
umask 022

readonly EXIT_INVALID=2 EXIT_CONFLICT=3 EXIT_NO_HELPER=4 EXIT_UNVERIFIED=5 EXIT_TRANSIENT=75
readonly FSTAB=/etc/fstab EFS_STATE_DIR=/var/run/efs LOCK_FILE=/run/lock/efs-automount.lock
readonly NFS_OPTIONS="nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev"
readonly MOUNT_TIMEOUT_SECONDS=90 INSTALL_TIMEOUT_SECONDS=180
readonly SYSTEM_PATHS="/bin|/boot|/dev|/etc|/home|/lib|/lib64|/opt|/proc|/root|/run|/sbin|/sys|/tmp|/usr|/var|/var/lib|/var/lib/docker|/var/lib/ecs|/var/log|/var/run|/var/cache|/var/lib/containerd"

fs_id="${SSM_FileSystemId-}"
mount_path="${SSM_MountPath-}"
region="${SSM_Region-}"
access_point="${SSM_AccessPointId-}"
mount_target_ip="${SSM_MountTargetIp-}"
read_only="${SSM_ReadOnly:-false}"
require_tls="${SSM_RequireTls:-false}"
dns_wait="${SSM_DnsWaitSeconds:-30}"
helper=none
resolved_name=""
fs_type="" source="" options=""
source_used=""
changed=false

log() { echo "efs-automount: $*" >&2; }

summary() {
  # Only validated values or fixed words reach here; anything else is masked.
  printf 'efs-automount: {"status":"%s","exit_code":%d,"file_system_id":"%s","mount_path":"%s","helper":"%s","source":"%s","changed":%s,"message":"%s"}\n' \
    "$1" "$2" "${fs_id//[^A-Za-z0-9-]/?}" "${mount_path//[^A-Za-z0-9._\/-]/?}" "$helper" \
    "${source_used//[^A-Za-z0-9.:\/-]/?}" "$changed" "${3//[^A-Za-z0-9 ,.:\/()=_-]/?}"
}

fail() {
  log "error: $2"
  summary failed "$1" "$2"
  exit "$1"
}

validate() {
  [[ $fs_id =~ ^fs-([0-9a-f]{8}|[0-9a-f]{17})$ ]] || fail "$EXIT_INVALID" "FileSystemId is not fs- and 8 or 17 hex digits"
  [[ $mount_path =~ ^/[A-Za-z0-9._/-]{1,127}$ ]] ||
    fail "$EXIT_INVALID" "MountPath is not an absolute path of [A-Za-z0-9._/-] up to 128 characters"
  [[ $mount_path != *..* && $mount_path != */ && $mount_path != *//* && $mount_path != */./* && $mount_path != */. ]] ||
    fail "$EXIT_INVALID" "MountPath is not in normal form"
  if [[ "|$SYSTEM_PATHS|" == *"|$mount_path|"* ]]; then
    fail "$EXIT_INVALID" "MountPath is a system directory"
  fi
  [[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$ ]] || fail "$EXIT_INVALID" "Region is not an AWS region name"
  [[ -z $access_point || $access_point =~ ^fsap-[0-9a-f]{17}$ ]] ||
    fail "$EXIT_INVALID" "AccessPointId is not fsap- and 17 hex digits"
  [[ -z $mount_target_ip || $mount_target_ip =~ ^([0-9]{1,3}\.){3}[0-9]{1,3}$ ]] ||
    fail "$EXIT_INVALID" "MountTargetIp is not an IPv4 address"
  [[ $read_only == true || $read_only == false ]] || fail "$EXIT_INVALID" "ReadOnly is neither true nor false"
  [[ $require_tls == true || $require_tls == false ]] || fail "$EXIT_INVALID" "RequireTls is neither true nor false"
  [[ $dns_wait =~ ^[0-9]{1,3}$ ]] || fail "$EXIT_INVALID" "DnsWaitSeconds is not a number of seconds"
}

# --- mount helper -------------------------------------------------------------------------

have_efs_utils() { command -v mount.efs >/dev/null 2>&1; }
have_nfs_client() { command -v mount.nfs4 >/dev/null 2>&1 || command -v mount.nfs >/dev/null 2>&1; }

install_efs_utils() {
  local manager
  for manager in dnf yum apt-get; do
    if command -v "$manager" >/dev/null 2>&1; then
      log "installing amazon-efs-utils with $manager"
      if timeout "$INSTALL_TIMEOUT_SECONDS" "$manager" install -y amazon-efs-utils >&2; then
        have_efs_utils && return 0
      fi
      log "$manager could not install amazon-efs-utils"
      return 1
    fi
  done
  return 1
}

choose_helper() {
  if have_efs_utils || install_efs_utils; then
    helper=efs-utils
  elif [[ -n $access_point ]]; then
    fail "$EXIT_NO_HELPER" "an access point needs amazon-efs-utils (TLS and IAM), which is not installable here"
  elif [[ $require_tls == true ]]; then
    fail "$EXIT_NO_HELPER" "TLS is required and needs amazon-efs-utils, which is not installable here"
  elif have_nfs_client; then
    helper=nfs
  else
    fail "$EXIT_NO_HELPER" "neither amazon-efs-utils nor an NFS client (nfs-utils) is available"
  fi
}

# --- name resolution ----------------------------------------------------------------------

dns_name() { printf '%s.efs.%s.amazonaws.com' "$fs_id" "$region"; }

# A new mount target takes a while to resolve: wait a bounded time, then use the IP.
# Sets resolved_name to the DNS name, or to "" when the IP is to be used.
resolve_target() {
  local name deadline
  name=$(dns_name)
  deadline=$((SECONDS + dns_wait))
  while :; do
    if getent hosts "$name" >/dev/null 2>&1; then
      resolved_name=$name
      return 0
    fi
    ((SECONDS < deadline)) || break
    sleep 2
  done
  [[ -n $mount_target_ip ]] ||
    fail "$EXIT_TRANSIENT" "the file system name does not resolve yet and no mount target IP was given"
  log "$name does not resolve after ${dns_wait}s; using the mount target IP $mount_target_ip"
  resolved_name=""
}

# --- what we mount ------------------------------------------------------------------------

# Sets fs_type, source and options for the chosen helper; $1 is the resolved name or empty.
plan_mount() {
  local resolved=$1
  if [[ $helper == efs-utils ]]; then
    fs_type=efs
    source="${fs_id}:/"
    options="_netdev,tls"
    [[ -z $access_point ]] || options+=",iam,accesspoint=${access_point}"
    [[ -n $resolved || -z $mount_target_ip ]] || options+=",mounttargetip=${mount_target_ip}"
  else
    fs_type=nfs4
    source="${resolved:-$mount_target_ip}:/"
    options=$NFS_OPTIONS
  fi
  [[ $read_only == false ]] || options+=",ro"
  source_used=$source
}

# Is the source currently mounted at the path this file system? (TLS mounts show 127.0.0.1.)
is_our_source() {
  local current=$1 state_name
  case "$current" in
    "$(dns_name):/" | "$(dns_name):" | "${fs_id}:/" | "${fs_id}") return 0 ;;
  esac
  if [[ -n $mount_target_ip && $current == "${mount_target_ip}:/" ]]; then
    return 0
  fi
  if [[ $current == 127.0.0.1:/ ]]; then
    state_name="${fs_id}.$(printf '%s' "${mount_path#/}" | tr / .)."
    compgen -G "${EFS_STATE_DIR}/${state_name}*" >/dev/null
    return
  fi
  return 1
}

current_source() { findmnt -n -o SOURCE --mountpoint "$mount_path" 2>/dev/null | tail -n 1; }
current_type() { findmnt -n -o FSTYPE --mountpoint "$mount_path" 2>/dev/null | tail -n 1; }

# --- fstab --------------------------------------------------------------------------------

# Exactly one line for the path: ours replaces an older one of ours; another's is a conflict.
ensure_fstab_line() {
  local line="${source} ${mount_path} ${fs_type} ${options} 0 0" others ours new_fstab
  others=$(awk -v path="$mount_path" -v fs="$fs_id" -v dns="$(dns_name)" -v ip="$mount_target_ip" '
    $1 !~ /^#/ && $2 == path && !(index($1, fs ":") == 1 || index($1, dns ":") == 1 || (ip != "" && $1 == ip ":/"))
  ' "$FSTAB")
  [[ -z $others ]] || fail "$EXIT_CONFLICT" "fstab already mounts something else at the mount path"
  ours=$(awk -v path="$mount_path" '$1 !~ /^#/ && $2 == path' "$FSTAB")
  [[ $ours != "$line" ]] || return 0
  new_fstab=$(mktemp)
  awk -v path="$mount_path" '!($1 !~ /^#/ && $2 == path)' "$FSTAB" >"$new_fstab"
  printf '%s\n' "$line" >>"$new_fstab"
  # Written in place, so the file keeps its owner, mode and SELinux label.
  cat "$new_fstab" >"$FSTAB"
  rm -f "$new_fstab"
  changed=true
  log "fstab: $line"
}

# --- verification -------------------------------------------------------------------------

verify() {
  local probe
  mountpoint -q -- "$mount_path" || fail "$EXIT_TRANSIENT" "the mount did not appear at the mount path"
  is_our_source "$(current_source)" || fail "$EXIT_UNVERIFIED" "the mounted source is not this file system"
  [[ $(current_type) == nfs4 ]] || fail "$EXIT_UNVERIFIED" "the mounted file system is not NFSv4"
  [[ $read_only == false ]] || return 0
  probe="${mount_path}/.efs-automount-probe.$(hostname -s 2>/dev/null || echo host).$$"
  if ! { printf '%s\n' "$fs_id" >"$probe" && [[ $(cat -- "$probe") == "$fs_id" ]]; }; then
    rm -f -- "$probe" 2>/dev/null || true
    fail "$EXIT_UNVERIFIED" "the write/read probe failed (check the access point and file system policy)"
  fi
  rm -f -- "$probe"
}

main() {
  validate
  # Two runs at once (a repeated event) must not both edit fstab or mount.
  mkdir -p "$(dirname "$LOCK_FILE")"
  exec 9>"$LOCK_FILE"
  flock -w 120 9 || fail "$EXIT_TRANSIENT" "another efs-automount run holds the lock"

  if mountpoint -q -- "$mount_path" && ! is_our_source "$(current_source)"; then
    fail "$EXIT_CONFLICT" "another file system is mounted at the mount path"
  fi
  choose_helper
  resolve_target
  plan_mount "$resolved_name"
  ensure_fstab_line
  mkdir -p -- "$mount_path"
  if mountpoint -q -- "$mount_path"; then
    source_used=$(current_source)
    log "already mounted at $mount_path"
  else
    if ! timeout "$MOUNT_TIMEOUT_SECONDS" mount -t "$fs_type" -o "$options" -- "$source" "$mount_path"; then
      fail "$EXIT_TRANSIENT" "mount failed or timed out"
    fi
    changed=true
  fi
  verify
  summary mounted 0 "mounted"
}

main "$@"
