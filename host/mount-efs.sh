#!/usr/bin/env bash
# Mounts one Amazon EFS file system on this host: validated, idempotent, in fstab, verified.
#
# SSM Run Command runs it from the efs-automount-mount document, which passes its
# parameters as environment variables (SSM_FileSystemId, SSM_MountPath, SSM_Region,
# SSM_AccessPointId). Every value is checked again here and always quoted.
#
# Exit codes: 0 mounted (or already mounted); 2 invalid input; 3 a conflicting mount
# or fstab line at the path; 4 no usable mount helper; 75 transient (the mount failed
# or did not verify; trying again may succeed). The last line of output is one JSON
# summary that the Lambda logs.
set -euo pipefail

readonly EXIT_INVALID=2 EXIT_CONFLICT=3 EXIT_NO_HELPER=4 EXIT_TRANSIENT=75
readonly FSTAB=/etc/fstab
readonly NFS_OPTIONS="nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev"

fs_id="${SSM_FileSystemId-}"
mount_path="${SSM_MountPath-}"
region="${SSM_Region-}"
access_point="${SSM_AccessPointId-}"
changed=false

summary() {
  # Values are validated before any summary names them, so they need no JSON escaping.
  printf 'efs-automount: {"status":"%s","exit_code":%d,"file_system_id":"%s","mount_path":"%s","changed":%s,"message":"%s"}\n' \
    "$1" "$2" "${fs_id//[^A-Za-z0-9-]/?}" "${mount_path//[^A-Za-z0-9._\/-]/?}" "$changed" "$3"
}

fail() {
  local code=$1 message=$2
  echo "efs-automount: error: $message" >&2
  summary failed "$code" "$message"
  exit "$code"
}

[[ $fs_id =~ ^fs-([0-9a-f]{8}|[0-9a-f]{17})$ ]] || fail "$EXIT_INVALID" "FileSystemId is not fs- and 8 or 17 hex digits"
[[ $mount_path =~ ^/[A-Za-z0-9._/-]{1,127}$ ]] || fail "$EXIT_INVALID" "MountPath is not an absolute path of [A-Za-z0-9._/-]"
[[ $mount_path != *..* && $mount_path != */ && $mount_path != *//* ]] || fail "$EXIT_INVALID" "MountPath is not in normal form"
[[ $region =~ ^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$ ]] || fail "$EXIT_INVALID" "Region is not an AWS region name"
[[ -z $access_point || $access_point =~ ^fsap-[0-9a-f]{17}$ ]] || fail "$EXIT_INVALID" "AccessPointId is not fsap- and 17 hex digits"
case "$mount_path" in
  /bin|/boot|/dev|/etc|/home|/lib|/lib64|/opt|/proc|/root|/run|/sbin|/sys|/tmp|/usr|/var|/var/lib|/var/lib/docker|/var/lib/ecs|/var/log|/var/run|/var/cache|/var/lib/containerd)
    fail "$EXIT_INVALID" "MountPath is a system directory" ;;
esac
# The first version mounts with the kernel NFS client; access points need amazon-efs-utils.
[[ -z $access_point ]] || fail "$EXIT_NO_HELPER" "an access point needs amazon-efs-utils, which this version does not use yet"
command -v mount.nfs4 >/dev/null 2>&1 || command -v mount.nfs >/dev/null 2>&1 ||
  fail "$EXIT_NO_HELPER" "no NFS client: install nfs-utils"

source_name="${fs_id}.efs.${region}.amazonaws.com:/"
fstab_line="${source_name} ${mount_path} nfs4 ${NFS_OPTIONS} 0 0"

# A mount already at the path must be this file system; nothing of anyone else's is unmounted.
if mountpoint -q -- "$mount_path"; then
  current=$(findmnt -n -o SOURCE --mountpoint "$mount_path" | head -n 1)
  [[ $current == "$source_name" || $current == "${fs_id}":* ]] ||
    fail "$EXIT_CONFLICT" "another file system is mounted at the mount path"
fi

# Exactly one fstab line for the path: ours replaces an older one of ours, another's is a conflict.
others=$(awk -v path="$mount_path" -v fs="$fs_id" '$1 !~ /^#/ && $2 == path && index($1, fs) != 1' "$FSTAB")
[[ -z $others ]] || fail "$EXIT_CONFLICT" "fstab already mounts something else at the mount path"
if ! grep -qxF -- "$fstab_line" "$FSTAB" || [[ $(awk -v path="$mount_path" '$1 !~ /^#/ && $2 == path' "$FSTAB" | wc -l) -ne 1 ]]; then
  new_fstab=$(mktemp)
  awk -v path="$mount_path" '!($1 !~ /^#/ && $2 == path)' "$FSTAB" >"$new_fstab"
  printf '%s\n' "$fstab_line" >>"$new_fstab"
  # Write in place so the file keeps its owner, mode and SELinux label.
  cat "$new_fstab" >"$FSTAB"
  rm -f "$new_fstab"
  changed=true
fi

mkdir -p -- "$mount_path"
if ! mountpoint -q -- "$mount_path"; then
  mount -- "$mount_path" || fail "$EXIT_TRANSIENT" "mount failed"
  changed=true
fi
mountpoint -q -- "$mount_path" || fail "$EXIT_TRANSIENT" "mount did not verify"
summary mounted 0 "mounted"
