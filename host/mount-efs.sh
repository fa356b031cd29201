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
# the mount path, nor goes through a directory that anyone but root (or another host) can change;
# it confirms the kernel mounted at the path itself; it takes down what it mounted when a later
# step fails; and it changes no fstab line that does not carry its mark (x-efs-automount).
#
# Exit codes (docs/how-it-works.md, "Exit codes"):
#   0  mounted, or already mounted
#   2  invalid input, or a path outside MOUNT_ROOTS                 permanent
#   3  something else is at the path: another mount, this file
#      system mounted otherwise than asked, another's fstab line,
#      a non-empty directory or a file; nothing is unmounted,
#      removed or changed                                            permanent
#   4  no usable mount helper                                       permanent
#   5  the mount is not this file system's server or type (this
#      run's mount is taken down)                                    permanent
#   6  the mount path is not safe: a symlink on the way, a parent
#      that anyone but root or another host can change, or the
#      mount landed elsewhere (taken down)                           permanent
#   75 the name does not resolve and no IP was given; the mount
#      failed, timed out or did not appear; the write/read probe
#      failed; fstab or the lock could not be written or taken
#      (this run's mount is taken down)                              transient
# The last line of output is one JSON summary the Lambda logs.
set -euo pipefail
umask 022

readonly EXIT_INVALID=2 EXIT_CONFLICT=3 EXIT_NO_HELPER=4 EXIT_UNVERIFIED=5 EXIT_UNSAFE_PATH=6 EXIT_TRANSIENT=75
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
mount_source=""      # the source the kernel shows for what plan_mount mounts (mountinfo)
source_used=""
changed=false
ecs_cluster=""
already_mounted=false
fstab_line=""        # the line to write once the mount verifies; "" when no line is to be written
drop_our_line=false  # our line at the path goes (another line already mounts exactly this)
mounted_here=()      # targets this run mounted, taken down when a later step fails

log() { echo "efs-automount: $*" >&2; }

summary() {
  # Only validated values or fixed words reach here; anything else is masked.
  printf 'efs-automount: {"status":"%s","exit_code":%d,"file_system_id":"%s","mount_path":"%s","helper":"%s","source":"%s","changed":%s,"ecs_cluster":"%s","message":"%s"}\n' \
    "$1" "$2" "${fs_id//[^A-Za-z0-9-]/?}" "${mount_path//[^A-Za-z0-9._\/-]/?}" "$helper" \
    "${source_used//[^A-Za-z0-9.:\/-]/?}" "$changed" "${ecs_cluster//[^A-Za-z0-9_-]/?}" "${3//[^A-Za-z0-9 ,.:\/()=_-]/?}"
}

fail() {
  log "error: $2"
  take_down_mounts
  summary failed "$1" "$2"
  exit "$1"
}

# Nothing this run mounted outlives its failure: fstab is written only after the mount verifies.
take_down_mounts() {
  local index
  for ((index = ${#mounted_here[@]} - 1; index >= 0; index--)); do
    umount -- "${mounted_here[index]}" 2>/dev/null || umount -l -- "${mounted_here[index]}" 2>/dev/null ||
      log "could not unmount ${mounted_here[index]}"
    log "took down this run's mount at ${mounted_here[index]}"
  done
  mounted_here=()
}

# The same rule as the Lambda's (chalicelib/mount/spec.py): normalized, and strictly under a root.
check_mount_path() {
  local root roots
  [[ $mount_path =~ ^/[A-Za-z0-9._/-]{1,127}$ ]] ||
    fail "$EXIT_INVALID" "MountPath is not an absolute path of letters, digits and . _ / - up to 128 characters"
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
  # efs-utils mounts its local tunnel (aws/efs-utils src/mount_efs/__init__.py mounts 127.0.0.1:<path>).
  if [[ $helper == efs-utils ]]; then mount_source=127.0.0.1:/; else mount_source=$source; fi
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
  local port=$1 state config connect
  state=$(tunnel_state_file "$port") || return 1
  config="${EFS_STATE_DIR}/stunnel-config.${state##*/}"
  [[ -f $config && ! -L $config ]] || return 1
  connect=$(awk -F ' *= *' '$1 == "connect" {value = $2} END {print value}' "$config")
  [[ $connect == "$(dns_name):2049" || (-n $mount_target_ip && $connect == "${mount_target_ip}:2049") ]]
}

# efs-utils' state file for this file system, path and tunnel port $1.
tunnel_state_file() {
  local port=$1 name
  [[ $port =~ ^[0-9]{1,5}$ ]] || return 1
  name="${mount_path#/}"
  name="${EFS_STATE_DIR}/${fs_id}.${name//\//.}.${port}"
  [[ -f $name && ! -L $name ]] || return 1
  printf '%s' "$name"
}

# Is the mount at the path (this file system's) what is asked: read-only or not, and TLS and the
# access point when asked? The kernel's options say ro or rw. For efs-utils' tunnel, its state file
# says the rest: bootstrap_proxy puts cert_details into it for a TLS mount only (a "certificate"),
# with "accessPoint" when mounted through one (aws/efs-utils src/efs_utils_common/proxy.py,
# bootstrap_proxy and write_tunnel_state_file, json.dump). A plain NFS mount has neither.
mounted_as_asked() {
  local source_now options_now state mounted_ro=false access_point_now=""
  read -r _ source_now options_now <<<"$(mounted_at_path)"
  [[ ,$options_now, != *,ro,* ]] || mounted_ro=true
  [[ $mounted_ro == "$read_only" ]] || return 1
  if [[ $source_now != 127.0.0.1:/ ]]; then
    [[ $require_tls == false && -z $access_point ]]
    return
  fi
  state=$(tunnel_state_file "$(mount_option port "$options_now")") || return 1
  if [[ $require_tls == true || -n $access_point ]]; then
    grep -Eq '"certificate": *"' "$state" || return 1
  fi
  access_point_now=$(grep -Eo '"accessPoint": *"[^"]*"' "$state" | sed 's/.*: *"\([^"]*\)"/\1/' | tail -n 1) || true
  [[ $access_point_now == "$access_point" ]]
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

# A directory on the way to the mount path must be one that only root on this host can change:
# mount(8) and the kernel resolve the path again long after this walk (efs-utils may be installed,
# DNS awaited), so whoever can rename a name in a parent could swap the checked directory for a
# symlink in between. Not root's, writable by group or others without the sticky bit (which keeps
# root's names root's), or on a file system other hosts write (stat -f): refused.
check_parent() {
  local dir=$1 owner mode fs_kind
  read -r owner mode <<<"$(stat -c '%u %a' -- "$dir")"
  [[ $owner == 0 ]] || fail "$EXIT_UNSAFE_PATH" "the mount path leads through $dir, which is not owned by root"
  if (((8#$mode & 8#022) && !(8#$mode & 8#1000))); then
    fail "$EXIT_UNSAFE_PATH" "the mount path leads through $dir, which others can write (no sticky bit)"
  fi
  fs_kind=$(stat -f -c %T -- "$dir")
  case $fs_kind in
    nfs* | fuse* | cifs | smb* | 9p | v9fs | ceph | afs | coda | lustre | gfs* | ocfs2 | ncp* | glusterfs)
      fail "$EXIT_UNSAFE_PATH" "the mount path leads through $dir, on a file system other hosts write ($fs_kind)"
      ;;
  esac
}

# Every component from / must be a directory, never a symlink: mkdir -p and mount follow one and
# would put the file system wherever it points. With $1 = create, missing components are made
# one at a time and checked again (a symlink could appear between the check and mkdir).
walk_mount_path() {
  local create=${1-} current="" part parts
  IFS=/ read -r -a parts <<<"${mount_path#/}"
  check_parent /
  for part in "${parts[@]}"; do
    [[ -z $current ]] || check_parent "$current"
    current+="/$part"
    [[ ! -L $current ]] || fail "$EXIT_UNSAFE_PATH" "the mount path leads through a symlink at $current"
    if [[ ! -e $current ]]; then
      [[ $create == create ]] || return 0
      mkdir -- "$current" 2>/dev/null || true
      [[ ! -L $current ]] || fail "$EXIT_UNSAFE_PATH" "the mount path leads through a symlink at $current"
    fi
    [[ -d $current ]] || fail "$EXIT_CONFLICT" "the mount path is not a directory at $current"
  done
  [[ $create != create || $(realpath -e -- "$mount_path") == "$mount_path" ]] ||
    fail "$EXIT_UNSAFE_PATH" "the real path of the mount path differs from it (a symlink)"
}

# Before mounting: the path exists as a real, empty directory (mounting over files hides them).
prepare_mount_path() {
  walk_mount_path create
  [[ -z $(ls -A -- "$mount_path") ]] ||
    fail "$EXIT_CONFLICT" "the mount path is a directory that is not empty, and nothing is mounted over it"
}

# --- fstab --------------------------------------------------------------------------------

# awk functions over fstab lines. A target is at the path however it is written, as libmount and
# systemd read it: fstab's octal escapes (\040 and the like) decoded, then //, . and .. resolved
# by name (which for .. errs towards seeing a line at the path, never away from it).
# shellcheck disable=SC2016 # awk's own $1, $2 and $4, not the shell's
readonly FSTAB_AWK='
  function octal(s) { return substr(s, 1, 1) * 64 + substr(s, 2, 1) * 8 + substr(s, 3, 1) }
  function unescaped(p,   out) {
    out = ""
    while (match(p, /\\[0-7][0-7][0-7]/)) {
      out = out substr(p, 1, RSTART - 1) sprintf("%c", octal(substr(p, RSTART + 1, 3)))
      p = substr(p, RSTART + 4)
    }
    return out p
  }
  function normal(p,   n, i, a, depth, kept, out) {
    if (p !~ /^\//) return p
    n = split(p, a, "/"); depth = 0
    for (i = 1; i <= n; i++) {
      if (a[i] == "" || a[i] == ".") continue
      if (a[i] == "..") { if (depth > 0) depth--; continue }
      kept[++depth] = a[i]
    }
    out = ""
    for (i = 1; i <= depth; i++) out = out "/" kept[i]
    return out == "" ? "/" : out
  }
  function at_path(p) { return normal(unescaped(p)) == path }
  function marked(o,   n, i, a) { n = split(o, a, ","); for (i = 1; i <= n; i++) if (a[i] == mark) return 1; return 0 }
  function line_at_path() { return $1 !~ /^#/ && NF >= 2 && at_path($2) }
'

# Lines of fstab for the mount path (however the path is written), ours (with the mark) or theirs.
fstab_lines_at_path() {
  LC_ALL=C awk -v path="$mount_path" -v mark="$FSTAB_MARK" -v want="$1" "$FSTAB_AWK"'
    line_at_path() && (marked($4) ? "ours" : "theirs") == want
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

# The new fstab: without our lines at the path, plus $1 when given.
new_fstab_text() {
  LC_ALL=C awk -v path="$mount_path" -v mark="$FSTAB_MARK" "$FSTAB_AWK"'
    !(line_at_path() && marked($4))
  ' "$FSTAB"
  [[ -z ${1-} ]] || printf '%s\n' "$1"
}

# Rewrites fstab without our lines at the path, plus $1 when given. Never in place (a full disk
# would leave it truncated): a copy beside it (mktemp, O_EXCL, in root's /etc) with its owner,
# mode and SELinux label, flushed to disk (dd conv=fsync), then renamed over it in one step.
rewrite_fstab() {
  local new_fstab
  new_fstab=$(mktemp "${FSTAB%/*}/.fstab.efs-automount.XXXXXXXX" 2>/dev/null) ||
    fail "$EXIT_TRANSIENT" "fstab could not be copied (/etc may be full or read-only), and is unchanged"
  if ! { new_fstab_text "${1-}" | dd of="$new_fstab" conv=fsync status=none 2>/dev/null &&
    chown --reference="$FSTAB" -- "$new_fstab" && chmod --reference="$FSTAB" -- "$new_fstab" &&
    { ! selinux_enabled || chcon --reference="$FSTAB" -- "$new_fstab"; } &&
    mv -f -- "$new_fstab" "$FSTAB"; }; then
    rm -f -- "$new_fstab"
    fail "$EXIT_TRANSIENT" "fstab could not be written (/etc may be full), and is unchanged"
  fi
  changed=true
}

selinux_enabled() { command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; }

# Exactly one line for the path. A line is ours only by our mark: we replace ours when what is
# asked changed. Anyone else's line stays byte for byte; it is a conflict unless it already
# mounts exactly what is asked (then it is the line, and ours goes). Lines older versions wrote
# carry no mark: they are treated as anyone else's. Decided before mounting (a conflict mounts
# nothing), written by write_fstab_line only once the mount verifies.
plan_fstab_line() {
  local line="${source} ${mount_path} ${fs_type} ${options},${FSTAB_MARK} 0 0" theirs ours
  theirs=$(fstab_lines_at_path theirs)
  ours=$(fstab_lines_at_path ours)
  if [[ -n $theirs ]]; then
    if [[ $theirs != *$'\n'* ]] && mounts_what_is_asked "$theirs"; then
      log "fstab: another line already mounts exactly this at the path; it is kept as it is"
      [[ -z $ours ]] || drop_our_line=true
      return 0
    fi
    fail "$EXIT_CONFLICT" "fstab has a line efs-automount did not write for the mount path that mounts something else, and it is left as it is"
  fi
  [[ $ours == "$line" ]] || fstab_line=$line
}

write_fstab_line() {
  if [[ -n $fstab_line ]]; then
    rewrite_fstab "$fstab_line"
    log "fstab: $fstab_line"
  elif [[ $drop_our_line == true ]]; then
    rewrite_fstab
  fi
}

# --- verification -------------------------------------------------------------------------

# A write/read probe under a name no one could have planted: random, created exclusively (with
# noclobber, bash opens a name that does not exist with O_CREAT|O_EXCL, which also refuses a
# symlink), and read back from the file this run created whatever its name leads to by then
# (/proc/self/fd reopens the descriptor's own file, never a name another client swapped in).
probe_write_read() {
  local probe token content="" fd
  probe=$(mktemp -u -p "$mount_path" .efs-automount-probe.XXXXXXXXXXXX) || return 1
  token="${fs_id}.${probe##*.}"
  set -o noclobber
  if ! { exec {fd}>"$probe"; } 2>/dev/null; then
    set +o noclobber
    return 1
  fi
  set +o noclobber
  if { printf '%s\n' "$token" >&"$fd"; } 2>/dev/null; then
    IFS= read -r content <"/proc/self/fd/$fd" 2>/dev/null || true
  fi
  exec {fd}>&-
  rm -f -- "$probe"
  [[ $content == "$token" ]]
}

# The probe's failure is transient (75): a retry may pass once the access point, the file system
# policy or the directory's mode is fixed, and one client of the file system can make any single
# probe fail (a chmod, a full quota of its own making); only the wait budget decides the host then.
verify() {
  mountpoint -q -- "$mount_path" || fail "$EXIT_TRANSIENT" "the mount did not appear at the mount path"
  is_this_file_system || fail "$EXIT_UNVERIFIED" "the mounted source is not this file system"
  [[ $read_only == false ]] || return 0
  probe_write_read ||
    fail "$EXIT_TRANSIENT" "the write/read probe failed (check the POSIX user of the access point, the file system policy and the mode of its root)"
}

# --- mounting -----------------------------------------------------------------------------

# Mounts of source $1, one a line: "<mount id> <target as /proc/self/mountinfo escapes it>".
mounts_of_source() {
  awk -v source="$1" '{ for (i = 7; i <= NF && $i != "-"; i++); if ($(i + 2) == source) print $1, $5 }' /proc/self/mountinfo
}

# mountinfo's octal escapes (\040 for a space and the like) decoded.
# shellcheck disable=SC2001 # a back-reference, which ${var//} has not
mountinfo_path() { printf '%b' "$(sed 's/\\\([0-7][0-7][0-7]\)/\\0\1/g' <<<"$1")"; }

# Records in mounted_here the mounts of our source that were not there before ($1).
note_new_mounts() {
  local before=$1 line
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    grep -qxF -- "$line" <<<"$before" || mounted_here+=("$(mountinfo_path "${line#* }")")
  done <<<"$(mounts_of_source "$mount_source")"
}

# Mounts, then confirms from the kernel's own list that the new mount's target is the mount path
# itself: mount(8) and the kernel resolve the path again and follow a symlink swapped in since the
# walk. A mount that landed anywhere else is taken down (fail), and no fstab line is written.
mount_at_path() {
  local before target
  before=$(mounts_of_source "$mount_source")
  if ! timeout "$MOUNT_TIMEOUT_SECONDS" mount -t "$fs_type" -o "$options" -- "$source" "$mount_path"; then
    note_new_mounts "$before"
    fail "$EXIT_TRANSIENT" "mount failed or timed out"
  fi
  changed=true
  note_new_mounts "$before"
  for target in "${mounted_here[@]}"; do
    [[ $target == "$mount_path" ]] ||
      fail "$EXIT_UNSAFE_PATH" "the mount landed elsewhere than the mount path (a symlink swapped in), and was taken down"
  done
  ((${#mounted_here[@]} > 0)) || fail "$EXIT_TRANSIENT" "the mount did not appear at the mount path"
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

# Two runs at once (a repeated event) must not both edit fstab or mount. The lock lives in a
# directory of root's alone (0700). Found with another mode, nothing in it can be trusted (a FIFO
# at `lock` blocks open(2), a symlink makes root create its target, an open lock can be held
# forever): the mode is taken back first, then the lock made anew. The lock is then opened only
# as a regular file of root's with one link, so open(2) neither follows a symlink nor blocks.
take_lock() {
  local lock="$RUN_DIR/lock"
  [[ -e $RUN_DIR || -L $RUN_DIR ]] || mkdir -m 700 -- "$RUN_DIR" 2>/dev/null || true
  [[ -d $RUN_DIR && ! -L $RUN_DIR && -O $RUN_DIR ]] ||
    fail "$EXIT_TRANSIENT" "$RUN_DIR is not a directory of this user"
  if [[ $(stat -c %a -- "$RUN_DIR") != 700 ]]; then
    chmod 700 -- "$RUN_DIR" || fail "$EXIT_TRANSIENT" "$RUN_DIR could not be made mode 0700"
    rm -rf -- "$lock"
    log "$RUN_DIR was writable by others; made root's alone, and its lock anew"
  fi
  if [[ -e $lock || -L $lock ]] && ! [[ -f $lock && ! -L $lock && -O $lock && $(stat -c %h -- "$lock") == 1 ]]; then
    rm -rf -- "$lock"
  fi
  exec 9>>"$lock"
  flock -w 120 9 || fail "$EXIT_TRANSIENT" "another efs-automount run holds the lock"
}

main() {
  read_ecs_cluster
  validate
  take_lock
  # Before anything looks at the path: mountpoint and findmnt follow symlinks too.
  walk_mount_path
  if mountpoint -q -- "$mount_path"; then
    already_mounted=true
    is_this_file_system || fail "$EXIT_CONFLICT" "another file system is mounted at the mount path"
    mounted_as_asked ||
      fail "$EXIT_CONFLICT" "this file system is mounted at the mount path, but not what is asked (TLS, access point or read-only), and is left as it is"
  else
    prepare_mount_path
  fi
  choose_helper
  resolve_target
  plan_mount "$resolved_name"
  plan_fstab_line
  if [[ $already_mounted == true ]]; then
    source_used=$(current_source)
    log "already mounted at $mount_path"
  else
    mount_at_path
  fi
  verify
  write_fstab_line
  summary mounted 0 "mounted"
}

# Run, unless sourced (the tests source it to check mount paths against the Lambda's rule).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
