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
# Anyone who can write to the file system can plant names on it, so the script never opens a
# name there that it did not just create exclusively; it never follows a symlink on the way to
# the mount path; and it changes no fstab line that does not carry its mark (x-efs-automount).
#
# Exit codes (README: "The mount script"):
#   0  mounted, or already mounted
#   2  invalid input, or a path outside MOUNT_ROOTS                 permanent
#   3  something else is at the path: another mount, another's
#      fstab line, a non-empty directory or a file; nothing is
#      unmounted, removed or changed                                 permanent
#   4  no usable mount helper                                       permanent
#   5  mounted, but the mount does not verify (not this file
#      system's server, type, write/read probe)                      permanent
#   6  the mount path leads through a symlink                       permanent
#   75 the name does not resolve and no IP was given, or the
#      mount failed or timed out                                    transient
# The last line of output is one JSON summary the Lambda logs.
set -euo pipefail
umask 022

readonly EXIT_INVALID=2 EXIT_CONFLICT=3 EXIT_NO_HELPER=4 EXIT_UNVERIFIED=5 EXIT_SYMLINK=6 EXIT_TRANSIENT=75
# /run is writable by root alone (/run/lock is world-writable on some distributions).
readonly FSTAB=/etc/fstab EFS_STATE_DIR=/var/run/efs RUN_DIR=/run/efs-automount ECS_CONFIG=/etc/ecs/ecs.config
# mount(8), X-* and x-*: userspace comments, sent neither to the mount.<type> helper nor to
# mount(2) (x- ones are also kept in libmount's utab). A line is ours only if it carries this.
readonly FSTAB_MARK=x-efs-automount
readonly NFS_OPTIONS="nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev"
readonly MOUNT_TIMEOUT_SECONDS=90 INSTALL_TIMEOUT_SECONDS=180
# Directories a mount path must lie strictly under (MOUNT_ROOTS, chosen when the app is deployed).
# tools/build_deploy.py writes the deployed roots over this line in the mount document.
readonly MOUNT_ROOTS=/mnt,/srv,/data,/efs,/media

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
ecs_cluster=""

log() { echo "efs-automount: $*" >&2; }

summary() {
  # Only validated values or fixed words reach here; anything else is masked.
  printf 'efs-automount: {"status":"%s","exit_code":%d,"file_system_id":"%s","mount_path":"%s","helper":"%s","source":"%s","changed":%s,"ecs_cluster":"%s","message":"%s"}\n' \
    "$1" "$2" "${fs_id//[^A-Za-z0-9-]/?}" "${mount_path//[^A-Za-z0-9._\/-]/?}" "$helper" \
    "${source_used//[^A-Za-z0-9.:\/-]/?}" "$changed" "${ecs_cluster//[^A-Za-z0-9_-]/?}" "${3//[^A-Za-z0-9 ,.:\/()=_-]/?}"
}

fail() {
  log "error: $2"
  summary failed "$1" "$2"
  exit "$1"
}

# The same rule as the Lambda's (chalicelib/mount_spec.py): normalized, and strictly under a root.
check_mount_path() {
  local root roots
  [[ $mount_path =~ ^/[A-Za-z0-9._/-]{1,127}$ ]] ||
    fail "$EXIT_INVALID" "MountPath is not an absolute path of [A-Za-z0-9._/-] up to 128 characters"
  [[ $mount_path != *..* && $mount_path != */ && $mount_path != *//* && $mount_path != */./* && $mount_path != */. ]] ||
    fail "$EXIT_INVALID" "MountPath is not in normal form"
  IFS=, read -r -a roots <<<"$MOUNT_ROOTS"
  for root in "${roots[@]}"; do
    [[ $mount_path != "$root"/* ]] || return 0
  done
  fail "$EXIT_INVALID" "MountPath is not strictly under one of MOUNT_ROOTS (${MOUNT_ROOTS//,/, })"
}

validate() {
  [[ $fs_id =~ ^fs-([0-9a-f]{8}|[0-9a-f]{17})$ ]] || fail "$EXIT_INVALID" "FileSystemId is not fs- and 8 or 17 hex digits"
  check_mount_path
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

# What the kernel has mounted at the path: type, source and options (the top of a stack).
mounted_at_path() { findmnt -n -r -o FSTYPE,SOURCE,OPTIONS --mountpoint "$mount_path" 2>/dev/null | tail -n 1; }

# The value of option $1 in the comma-separated options $2, or nothing.
mount_option() {
  local option all_options
  IFS=, read -r -a all_options <<<"$2"
  for option in "${all_options[@]}"; do
    if [[ $option == "$1="* ]]; then
      printf '%s' "${option#*=}"
      return 0
    fi
  done
}

# An address of this file system: the mount target IP the Lambda looked up, or what its name resolves to.
is_file_system_address() {
  [[ -n $1 ]] || return 1
  [[ $1 != "$mount_target_ip" ]] || return 0
  getent ahostsv4 "$(dns_name)" 2>/dev/null | awk -v addr="$1" '$1 == addr {found = 1} END {exit !found}'
}

# efs-utils' TLS tunnel for this path and port leads to this file system. efs-utils names its
# state <fs-id>.<path with dots>.<port> and writes stunnel-config.<same> with
# `connect = <dns name or mount target ip>:2049` (aws/efs-utils src/efs_utils_common/proxy.py).
tunnel_is_this_file_system() {
  local port=$1 name config connect
  [[ $port =~ ^[0-9]{1,5}$ ]] || return 1
  name="${mount_path#/}"
  name="${fs_id}.${name//\//.}.${port}"
  config="${EFS_STATE_DIR}/stunnel-config.${name}"
  [[ -f ${EFS_STATE_DIR}/${name} && ! -L ${EFS_STATE_DIR}/${name} && -f $config && ! -L $config ]] || return 1
  connect=$(awk -F ' *= *' '$1 == "connect" {value = $2} END {print value}' "$config")
  [[ $connect == "$(dns_name):2049" || (-n $mount_target_ip && $connect == "${mount_target_ip}:2049") ]]
}

# Is what is mounted at the path this file system? A source string proves nothing (any mount can
# be labelled fs-...:/), so the server address the kernel reached (addr=) must be this file
# system's, or efs-utils' local tunnel for this path must lead to it.
is_this_file_system() {
  local fs_type_now source_now options_now
  read -r fs_type_now source_now options_now <<<"$(mounted_at_path)"
  [[ $fs_type_now == nfs4 ]] || return 1
  case "$source_now" in
    "$(dns_name):/" | "${mount_target_ip:-unset}:/")
      is_file_system_address "$(mount_option addr "$options_now")"
      ;;
    127.0.0.1:/)
      [[ $(mount_option addr "$options_now") == 127.0.0.1 ]] &&
        tunnel_is_this_file_system "$(mount_option port "$options_now")"
      ;;
    *) return 1 ;;
  esac
}

current_source() { findmnt -n -o SOURCE --mountpoint "$mount_path" 2>/dev/null | tail -n 1; }

# --- the mount path -----------------------------------------------------------------------

# Every component from / must be a directory, never a symlink: mkdir -p and mount follow one and
# would put the file system wherever it points. With $1 = create, missing components are made
# one at a time and checked again (a symlink could appear between the check and mkdir).
walk_mount_path() {
  local create=${1-} current="" part parts
  IFS=/ read -r -a parts <<<"${mount_path#/}"
  for part in "${parts[@]}"; do
    current+="/$part"
    [[ ! -L $current ]] || fail "$EXIT_SYMLINK" "the mount path leads through a symlink at $current"
    if [[ ! -e $current ]]; then
      [[ $create == create ]] || return 0
      mkdir -- "$current" 2>/dev/null || true
      [[ ! -L $current ]] || fail "$EXIT_SYMLINK" "the mount path leads through a symlink at $current"
    fi
    [[ -d $current ]] || fail "$EXIT_CONFLICT" "the mount path is not a directory at $current"
  done
  [[ $create != create || $(realpath -e -- "$mount_path") == "$mount_path" ]] ||
    fail "$EXIT_SYMLINK" "the real path of the mount path differs from it (a symlink)"
}

# Before mounting: the path exists as a real, empty directory (mounting over files hides them).
prepare_mount_path() {
  walk_mount_path create
  [[ -z $(ls -A -- "$mount_path") ]] ||
    fail "$EXIT_CONFLICT" "the mount path is a directory that is not empty; nothing is mounted over it"
}

# --- fstab --------------------------------------------------------------------------------

# Lines of fstab for the mount path (however the path is written), ours (with the mark) or theirs.
fstab_lines_at_path() {
  awk -v path="$mount_path" -v mark="$FSTAB_MARK" -v want="$1" '
    function at_path(p) { gsub(/\/+/, "/", p); if (p != "/") sub(/\/$/, "", p); return p == path }
    function marked(o,   n, i, a) { n = split(o, a, ","); for (i = 1; i <= n; i++) if (a[i] == mark) return 1; return 0 }
    $1 !~ /^#/ && NF >= 2 && at_path($2) && (marked($4) ? "ours" : "theirs") == want
  ' "$FSTAB"
}

option_set() { tr , '\n' <<<"$1" | sed '/^$/d' | sort -u | tr '\n' ,; }

# Does the fstab line $1 mount exactly what is asked: the same source, type and options?
mounts_what_is_asked() {
  local line_source line_type line_options
  read -r line_source _ line_type line_options _ <<<"$1"
  [[ $line_source == "$source" && $line_type == "$fs_type" ]] &&
    [[ $(option_set "$line_options") == "$(option_set "$options")" ]]
}

# Rewrites fstab without our lines at the path, plus $1 when given. Written in place, so the
# file keeps its owner, mode and SELinux label; the copy is made with mktemp (O_EXCL).
rewrite_fstab() {
  local new_fstab
  new_fstab=$(mktemp)
  awk -v path="$mount_path" -v mark="$FSTAB_MARK" '
    function at_path(p) { gsub(/\/+/, "/", p); if (p != "/") sub(/\/$/, "", p); return p == path }
    function marked(o,   n, i, a) { n = split(o, a, ","); for (i = 1; i <= n; i++) if (a[i] == mark) return 1; return 0 }
    !($1 !~ /^#/ && NF >= 2 && at_path($2) && marked($4))
  ' "$FSTAB" >"$new_fstab"
  [[ -z ${1-} ]] || printf '%s\n' "$1" >>"$new_fstab"
  cat "$new_fstab" >"$FSTAB"
  rm -f "$new_fstab"
  changed=true
}

# Exactly one line for the path. A line is ours only by our mark: we replace ours when what is
# asked changed. Anyone else's line stays byte for byte; it is a conflict unless it already
# mounts exactly what is asked (then it is the line, and ours goes). Lines older versions wrote
# carry no mark: they are treated as anyone else's.
ensure_fstab_line() {
  local line="${source} ${mount_path} ${fs_type} ${options},${FSTAB_MARK} 0 0" theirs ours
  theirs=$(fstab_lines_at_path theirs)
  ours=$(fstab_lines_at_path ours)
  if [[ -n $theirs ]]; then
    if [[ $theirs != *$'\n'* ]] && mounts_what_is_asked "$theirs"; then
      log "fstab: another line already mounts exactly this at the path; it is kept as it is"
      [[ -z $ours ]] || rewrite_fstab
      return 0
    fi
    fail "$EXIT_CONFLICT" "fstab has a line efs-automount did not write for the mount path that mounts something else; it is left as it is"
  fi
  [[ $ours != "$line" ]] || return 0
  rewrite_fstab "$line"
  log "fstab: $line"
}

# --- verification -------------------------------------------------------------------------

# A write/read probe under a name no one could have planted: random, created exclusively (dd
# conv=excl is O_CREAT|O_EXCL, which also refuses a symlink), read back without following a
# symlink or blocking on a FIFO, and removed by that name only.
probe_write_read() {
  local probe token content
  probe=$(mktemp -u -p "$mount_path" .efs-automount-probe.XXXXXXXXXXXX) || return 1
  token="${fs_id}.${probe##*.}"
  printf '%s\n' "$token" | dd of="$probe" conv=excl status=none 2>/dev/null || return 1
  content=$(timeout 10 dd if="$probe" iflag=nofollow,nonblock bs=4096 count=1 status=none 2>/dev/null) || true
  rm -f -- "$probe"
  [[ $content == "$token" ]]
}

verify() {
  mountpoint -q -- "$mount_path" || fail "$EXIT_TRANSIENT" "the mount did not appear at the mount path"
  is_this_file_system || fail "$EXIT_UNVERIFIED" "the mounted source is not this file system"
  [[ $read_only == false ]] || return 0
  probe_write_read || fail "$EXIT_UNVERIFIED" "the write/read probe failed (check the access point and file system policy)"
}

# The host's ECS cluster, a hint for finding its container instance: ECS_CLUSTER of the agent's
# config, "default" when unset (as the agent does), "" without an ECS config or for a bad name.
read_ecs_cluster() {
  local line value=default
  [[ -f $ECS_CONFIG ]] || return 0
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    if [[ $line =~ ^[[:space:]]*ECS_CLUSTER=(.*)$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
  done <"$ECS_CONFIG"
  value=${value#\"}
  value=${value%\"}
  [[ -n $value ]] || value=default
  if [[ $value =~ ^[A-Za-z0-9_-]{1,255}$ ]]; then
    ecs_cluster=$value
  else
    log "ECS_CLUSTER in $ECS_CONFIG is not a cluster name; not reported"
  fi
}

# Two runs at once (a repeated event) must not both edit fstab or mount.
take_lock() {
  [[ -e $RUN_DIR ]] || mkdir -m 700 -- "$RUN_DIR" 2>/dev/null || true
  [[ -d $RUN_DIR && ! -L $RUN_DIR && -O $RUN_DIR ]] ||
    fail "$EXIT_TRANSIENT" "$RUN_DIR is not a directory of this user"
  exec 9>>"$RUN_DIR/lock"
  flock -w 120 9 || fail "$EXIT_TRANSIENT" "another efs-automount run holds the lock"
}

main() {
  read_ecs_cluster
  validate
  take_lock
  # Before anything looks at the path: mountpoint and findmnt follow symlinks too.
  walk_mount_path
  if mountpoint -q -- "$mount_path"; then
    is_this_file_system || fail "$EXIT_CONFLICT" "another file system is mounted at the mount path"
  else
    prepare_mount_path
  fi
  choose_helper
  resolve_target
  plan_mount "$resolved_name"
  ensure_fstab_line
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

# Run, unless sourced (the tests source it to check mount paths against the Lambda's rule).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
