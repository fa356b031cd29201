"""host/mount-efs.sh cannot be turned against its host (issue 9, findings 1, 2, 4, 5), run for real.

Each test plays one move of someone who can write to the file system, tag a group, edit fstab
or answer NFS at an address, in a private mount namespace (simulation/namespace_host.py).
"""

from __future__ import annotations

import re
import socket

import pytest

from simulation.namespace_host import BASE_FSTAB, DNS_NAME, FS, NamespaceHost, namespace_unavailable, parameters
from tests.support.mount_paths import SYSTEM_DIRECTORIES

REASON = namespace_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"mount script not run for real: {REASON}")

MOUNT_PATH = "/mnt/efs/data"
ACCESS_POINT = "fsap-0123456789abcdef0"
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}


def _lines_for_path(fstab: str) -> list[str]:
    return [line for line in fstab.splitlines() if not line.startswith("#") and line.split()[1:2] == [MOUNT_PATH]]


def _writes_under(opens: list[str], directory: str) -> list[str]:
    """Opens (strace -f -y lines) of a name under `directory` for writing without O_EXCL.

    Both the name asked for and the file it resolved to (strace -y: `= 3</real/path>`) count, so a
    symlink followed out of the directory, or into it, is caught either way."""
    found = []
    for line in opens:
        match = re.search(r'\b(open|openat|openat2|creat)\((?:([^",]*), )?"([^"]*)"(.*)$', line)
        if match is None:
            continue
        call, dirfd, name, rest = match.groups()
        flags = set(re.findall(r"\bO_[A-Z]+\b", rest))
        if call == "creat":
            flags |= {"O_CREAT", "O_WRONLY", "O_TRUNC"}
        if not flags & WRITE_FLAGS or "O_EXCL" in flags:
            continue
        if not name.startswith("/"):
            base = re.search(r"<([^>]*)>", dirfd or "")
            name = f"{base.group(1) if base else ''}/{name}"
        resolved = re.search(r"= \d+<([^>]*)>", rest)
        paths = [name] + ([resolved.group(1)] if resolved else [])
        if any(path == directory or path.startswith(directory + "/") for path in paths):
            found.append(line)
    return found


# --- finding 1: nothing the script writes on the shared file system can be a planted name ----------


def test_probe_never_writes_through_symlinks_planted_on_the_file_system(tmp_path):
    # Given another client of the file system planted symlinks to a host file under every probe
    # name the script could pick (this namespace's PIDs are small), after the first mount
    victim = tmp_path / "victim"
    victim.write_text("root:precious:19000::::::\n")
    short_name = socket.gethostname().split(".")[0]
    # One process plants them all, so the PIDs that follow stay in range.
    plant = (
        "python3 -c 'import os, sys\nfor pid in range(1, 5000): "
        f'os.symlink(sys.argv[1], f"{MOUNT_PATH}/.efs-automount-probe.{short_name}.{{pid}}")\' "$ROOT/victim"'
    )
    host = NamespaceHost(tmp_path)

    # When a host runs the script again (a repeated delivery or a repair)
    first, second = host.run(parameters(), plant, parameters())

    # Then the host file is untouched, and the run still verifies the mount
    assert (first.code, second.code) == (0, 0), second.stderr
    assert victim.read_text() == "root:precious:19000::::::\n"


def test_no_name_under_the_mount_path_is_opened_for_writing_without_o_excl(tmp_path):
    # Given a first mount and a second run, both traced with strace -f -y
    host = NamespaceHost(tmp_path, trace=True)

    first, second = host.run(parameters(), parameters())

    # Then every file the script wrote under the mount path it created itself, exclusively
    assert (first.code, second.code) == (0, 0), first.stderr
    opens = host.traced_opens(0) + host.traced_opens(1)
    assert any(MOUNT_PATH in line for line in opens), "the trace saw the probe"
    assert _writes_under(opens, MOUNT_PATH) == []


def test_the_lock_is_never_opened_through_a_symlink(tmp_path):
    # Given a symlink where an older version kept its lock (/run/lock is world-writable on some hosts)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    host = NamespaceHost(tmp_path)

    (run,) = host.run('mkdir -p /run/lock && ln -s "$ROOT/victim" /run/lock/efs-automount.lock', parameters())

    assert run.code == 0, run.stderr
    assert victim.read_text() == "precious\n"


# --- finding 2: a symlink on the way to the mount path is refused ---------------------------------


@pytest.mark.parametrize(
    "plant",
    [
        'mkdir -p "$ROOT/elsewhere" && ln -s "$ROOT/elsewhere" /mnt/efs',  # a symlinked parent
        'mkdir -p /mnt/efs "$ROOT/elsewhere/data" && ln -s "$ROOT/elsewhere/data" /mnt/efs/data',  # the path itself
        'ln -s "$ROOT/elsewhere" /mnt/efs',  # a dangling symlink: mkdir -p would create its target
        'mkdir -p /mnt/real "$ROOT/elsewhere" && ln -s real /mnt/efs',  # relative, still under /mnt
    ],
)
def test_a_symlink_on_the_way_to_the_mount_path_is_a_permanent_refusal(tmp_path, plant):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(
        plant,
        parameters(),
        after='findmnt -rn -o TARGET | grep -q -e "$ROOT/elsewhere" -e /mnt/real && touch "$ROOT/landed"; true',
    )

    assert run.code == 6, run.stderr
    assert run.summary["status"] == "failed"
    assert "symlink" in run.summary["message"]
    assert not (tmp_path / "landed").exists(), "the file system was mounted where the symlink pointed"
    assert host.mount_calls == []
    assert host.fstab_after == BASE_FSTAB


@pytest.mark.parametrize(
    ("plant", "message"),
    [
        (f"mkdir -p {MOUNT_PATH} && echo keep >{MOUNT_PATH}/report.csv", "not empty"),
        (f"mkdir -p /mnt/efs && echo keep >{MOUNT_PATH}", "not a directory"),
    ],
)
def test_a_path_holding_anything_but_an_empty_directory_is_left_alone(tmp_path, plant, message):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(plant, parameters(), after=f'ls -A {MOUNT_PATH} >"$ROOT/listing" 2>&1; true')

    assert run.code == 3, run.stderr
    assert message in run.summary["message"]
    assert host.mount_calls == []
    assert host.mounts_at(MOUNT_PATH) == []
    assert host.fstab_after == BASE_FSTAB


def test_an_empty_directory_at_the_path_is_mounted_over(tmp_path):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(f"mkdir -p {MOUNT_PATH}", parameters())

    assert run.code == 0, run.stderr
    assert len(host.mounts_at(MOUNT_PATH)) == 1


# --- finding 3 on the host: only paths under MOUNT_ROOTS -----------------------------------------


@pytest.mark.parametrize("path", [*SYSTEM_DIRECTORIES, "/mnt", "/mntx/data"])
def test_a_path_outside_the_mount_roots_is_invalid_input(tmp_path, path):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(parameters(SSM_MountPath=path))

    assert run.code == 2, run.stderr
    assert "MOUNT_ROOTS" in run.summary["message"]
    assert host.mount_calls == []
    assert host.fstab_after == BASE_FSTAB


# --- finding 4: a line of fstab is ours only by our mark -----------------------------------------


def test_the_users_access_point_line_at_the_path_is_kept_and_is_a_conflict(tmp_path):
    # Given the user confined the path to an access point in their own fstab line
    theirs = f"{FS}:/ {MOUNT_PATH} efs _netdev,tls,iam,accesspoint={ACCESS_POINT} 0 0\n"
    host = NamespaceHost(tmp_path, efs_utils=True, fstab=BASE_FSTAB + theirs)

    # When a mount of the whole file system is asked for at that path
    (run,) = host.run(parameters())

    # Then their line stays byte for byte, nothing is mounted, and the failure is permanent
    assert run.code == 3, run.stderr
    assert "fstab" in run.summary["message"]
    assert host.fstab_after == BASE_FSTAB + theirs
    assert host.mount_calls == []


def test_the_users_line_that_mounts_exactly_what_is_asked_is_kept_and_used(tmp_path):
    theirs = f"{FS}:/ {MOUNT_PATH} efs tls,_netdev 0 2\n"
    host = NamespaceHost(tmp_path, efs_utils=True, fstab=BASE_FSTAB + theirs)

    (run,) = host.run(parameters())

    assert run.code == 0, run.stderr
    assert host.fstab_after == BASE_FSTAB + theirs
    assert len(host.mounts_at(MOUNT_PATH)) == 1


def test_a_line_for_the_same_path_written_another_way_is_still_theirs(tmp_path):
    theirs = f"nfs.example.com:/export {MOUNT_PATH}/ nfs4 defaults 0 0\n"
    host = NamespaceHost(tmp_path, fstab=BASE_FSTAB + theirs)

    (run,) = host.run(parameters())

    assert run.code == 3, run.stderr
    assert host.fstab_after == BASE_FSTAB + theirs


def test_an_unmarked_line_an_older_version_wrote_is_not_rewritten(tmp_path):
    # Lines written before the mark existed cannot be told from a user's own: kept, and reported.
    old = f"{DNS_NAME}:/ {MOUNT_PATH} nfs4 nfsvers=4.1,rsize=1048576,wsize=1048576,hard,_netdev 0 0\n"
    host = NamespaceHost(tmp_path, fstab=BASE_FSTAB + old)

    (run,) = host.run(parameters())

    assert run.code == 3, run.stderr
    assert host.fstab_after == BASE_FSTAB + old


def test_our_marked_line_is_replaced_when_what_is_asked_changes(tmp_path):
    host = NamespaceHost(tmp_path)

    first, second = host.run(parameters(), "umount /mnt/efs/data", parameters(SSM_ReadOnly="true"))

    assert (first.code, second.code) == (0, 0), second.stderr
    (line,) = _lines_for_path(host.fstab_after)
    assert line.split()[3].split(",")[-2:] == ["ro", "x-efs-automount"]
    assert host.fstab_after.startswith(BASE_FSTAB)


# --- finding 5: only this file system, from its name or its mount target -------------------------


@pytest.mark.parametrize("label", [f"{FS}:/", f"{DNS_NAME}:/", "10.0.1.25:/"])
def test_a_foreign_server_already_mounted_under_our_name_is_a_conflict(tmp_path, label):
    # Given an NFS server at another address, mounted at the path with a source that looks like ours
    host = NamespaceHost(tmp_path, premount=label, premount_addr="192.0.2.66")

    (run,) = host.run(parameters(SSM_MountTargetIp="10.0.1.25"))

    assert run.code == 3, run.stderr
    assert "another file system is mounted" in run.summary["message"]
    assert host.fstab_after == BASE_FSTAB


def test_our_own_nfs_mount_from_the_mount_target_ip_is_recognised(tmp_path):
    host = NamespaceHost(tmp_path, premount=f"{DNS_NAME}:/", premount_addr="10.0.0.17")

    (run,) = host.run(parameters())

    assert run.code == 0, run.stderr
    assert host.mount_calls == []


def test_a_mount_that_reached_another_server_does_not_verify(tmp_path):
    # Given the name resolved to our mount target, but the NFS client reached another server
    host = NamespaceHost(tmp_path)

    (run,) = host.run('echo 192.0.2.66 >"$SHIM_DIR/nfs-server-addr"', parameters(SSM_MountTargetIp="10.0.0.17"))

    assert run.code == 5, run.stderr
    assert "not this file system" in run.summary["message"]


def test_a_tls_mount_whose_tunnel_leads_elsewhere_does_not_verify(tmp_path):
    host = NamespaceHost(tmp_path, efs_utils=True)

    (run,) = host.run('echo nfs.example.com >"$SHIM_DIR/stunnel-connect"', parameters())

    assert run.code == 5, run.stderr


def test_a_tls_mount_through_the_mount_target_ip_verifies(tmp_path):
    host = NamespaceHost(tmp_path, efs_utils=True, resolvable=False)

    (run,) = host.run(parameters(SSM_MountTargetIp="10.0.1.25"))

    assert run.code == 0, run.stderr
    assert host.mount_calls == [f"-t efs -o _netdev,tls,mounttargetip=10.0.1.25 -- {FS}:/ {MOUNT_PATH}"]


# --- the summary names the host's ECS cluster (a hint for finding its container instance) ---------


@pytest.mark.parametrize(
    ("config", "cluster"),
    [
        (None, ""),
        ("ECS_CLUSTER=web-prod_1\nECS_ENABLE_TASK_IAM_ROLE=true\n", "web-prod_1"),
        ("ECS_ENABLE_TASK_IAM_ROLE=true\n", "default"),
        ('ECS_CLUSTER="quoted"\n', "quoted"),
        ('ECS_CLUSTER=evil","status":"x\n', ""),
    ],
)
def test_the_summary_names_the_ecs_cluster_of_the_host(tmp_path, config, cluster):
    host = NamespaceHost(tmp_path, ecs_config=config)

    (run,) = host.run(parameters())

    assert run.code == 0, run.stderr
    assert run.summary["ecs_cluster"] == cluster
    assert run.summary["status"] == "mounted"


# --- issue 9 follow-up: what an adversarial review found ------------------------------------------
# Races are played at fixed points: `mount`'s stand-in runs `before_mount` just before the kernel
# resolves the target, and a hooked command runs `hook` first (another client's move whenever the
# script hands control to a command), so each outcome is the same on every run.

CRON_D = 'mkdir -p /etc/cron.d && echo "# distro job" >/etc/cron.d/0hourly'
LANDED_ON_CRON_D = 'findmnt -n /etc/cron.d >/dev/null && touch "$ROOT/landed"; ls -A /etc/cron.d >"$ROOT/cron.d"; true'


@pytest.mark.parametrize(
    ("parent", "why"),
    [
        ("mkdir -p /mnt/shared && chown 65534:65534 /mnt/shared", "owned by a user"),
        ("mkdir -p /mnt/shared && chmod 0777 /mnt/shared", "writable by others"),
        ("mkdir -p /mnt/shared && chown 0:65534 /mnt/shared && chmod 0775 /mnt/shared", "group-writable"),
        # another file system others write to (a stand-in tmpfs labelled as an EFS)
        ("mkdir -p /mnt/shared && /usr/bin/mount -t tmpfs fs-0bbbbbbbbbbbbbbbb:/ /mnt/shared", "network"),
    ],
)
def test_a_parent_someone_else_can_change_is_a_permanent_refusal(tmp_path, parent, why):
    # Given a parent of the mount path that a user or another host could rename the path under
    # (finding 1: the path is checked long before `mount` resolves it again)
    host = NamespaceHost(tmp_path)

    (run,) = host.run(parent, parameters(SSM_MountPath="/mnt/shared/app/data"))

    # Then nothing is mounted or written, and a retry cannot help
    assert run.code == 6, (why, run.stderr)
    assert run.summary["status"] == "failed"
    assert host.mount_calls == []
    assert host.fstab_after == BASE_FSTAB


def test_a_root_owned_sticky_parent_is_accepted(tmp_path):
    # Others may add names to a sticky directory but cannot rename root's
    host = NamespaceHost(tmp_path)

    (run,) = host.run(
        "mkdir -p -m 1777 /mnt/shared && chmod 1777 /mnt/shared", parameters(SSM_MountPath="/mnt/shared/app")
    )

    assert run.code == 0, run.stderr
    assert len(host.mounts_at("/mnt/shared/app")) == 1


def test_a_path_swapped_for_a_symlink_just_before_mount_is_undone(tmp_path):
    # Given the checked directory is swapped for a symlink to /etc/cron.d at the last moment before
    # the kernel resolves the target (a move the ownership checks cannot see: root, or a file system
    # that says it is local)
    host = NamespaceHost(
        tmp_path,
        before_mount=f"mv {MOUNT_PATH} /mnt/efs/.checked && ln -s /etc/cron.d {MOUNT_PATH}",
    )

    (run,) = host.run(CRON_D, parameters(), after=LANDED_ON_CRON_D)

    # Then the mount that landed elsewhere is taken down, no fstab line stays, and it is permanent
    assert run.code == 6, run.stderr
    assert "elsewhere" in run.summary["message"]
    assert not (tmp_path / "landed").exists(), "the file system stayed mounted over /etc/cron.d"
    assert "0hourly" in (tmp_path / "cron.d").read_text().split(), "/etc/cron.d is hidden"
    assert host.fstab_after == BASE_FSTAB


def test_a_mount_that_does_not_verify_is_taken_down_with_no_fstab_line(tmp_path):
    # Given the NFS client reached another server than this file system's
    host = NamespaceHost(tmp_path)

    (run,) = host.run('echo 192.0.2.66 >"$SHIM_DIR/nfs-server-addr"', parameters(SSM_MountTargetIp="10.0.0.17"))

    assert run.code == 5, run.stderr
    assert host.mounts_at(MOUNT_PATH) == []
    assert host.fstab_after == BASE_FSTAB


def test_a_failed_mount_leaves_no_fstab_line(tmp_path):
    host = NamespaceHost(tmp_path, mount_fails=True)

    (run,) = host.run(parameters())

    assert run.code == 75, run.stderr
    assert host.fstab_after == BASE_FSTAB


@pytest.mark.parametrize(
    ("mounted_with", "asked"),
    [
        # plain NFS of the whole file system; asked: TLS through an access point, read-only (finding 2)
        ("nfs", {"SSM_AccessPointId": ACCESS_POINT, "SSM_RequireTls": "true", "SSM_ReadOnly": "true"}),
        ("nfs", {"SSM_RequireTls": "true"}),
        ("nfs", {"SSM_ReadOnly": "true"}),
        ("tls", {"SSM_AccessPointId": ACCESS_POINT}),  # TLS, but the whole file system
        ("tls-ap", {}),  # confined to an access point; asked: the whole file system
    ],
)
def test_a_mount_of_this_file_system_that_is_not_what_is_asked_is_a_conflict(tmp_path, mounted_with, asked):
    host = NamespaceHost(tmp_path, efs_utils=True)
    first = {
        "nfs": f"mkdir -p {MOUNT_PATH} && mount -t nfs4 -o rw {DNS_NAME}:/ {MOUNT_PATH}",
        "tls": f"mkdir -p {MOUNT_PATH} && mount -t efs -o _netdev,tls {FS}:/ {MOUNT_PATH}",
        "tls-ap": f"mkdir -p {MOUNT_PATH} && mount -t efs -o tls,iam,accesspoint={ACCESS_POINT} {FS}:/ {MOUNT_PATH}",
    }[mounted_with]

    (run,) = host.run(
        f'PATH="$SHIM_DIR:$PATH" SSM_Region=us-east-1 bash -c {_shell_quote(first)}',
        parameters(**asked),
    )

    # Then what is mounted stays, no fstab line claims it, and it is reported, not accepted
    assert run.code == 3, run.stderr
    assert "not what is asked" in run.summary["message"]
    assert len(host.mounts_at(MOUNT_PATH)) == 1
    assert host.fstab_after == BASE_FSTAB


def test_a_second_run_over_an_access_point_mount_recognises_it(tmp_path):
    host = NamespaceHost(tmp_path, efs_utils=True)

    first, second = host.run(parameters(SSM_AccessPointId=ACCESS_POINT), parameters(SSM_AccessPointId=ACCESS_POINT))

    assert (first.code, second.code) == (0, 0), second.stderr
    assert second.summary["changed"] is False


PROBE_TO_FIFO = (
    f'for probe in {MOUNT_PATH}/.efs-automount-probe.*; do [ -f "$probe" ] || continue; '
    'mkfifo "$probe.swap" && mv -f "$probe.swap" "$probe"; done'
)


def test_a_probe_swapped_for_a_fifo_still_verifies(tmp_path):
    # Given another client swaps the probe for a FIFO whenever the script runs a command (finding 4)
    host = NamespaceHost(
        tmp_path, hook=PROBE_TO_FIFO, hooked=("dd", "timeout", "rm", "cat", "mktemp", "sync", "head", "sleep")
    )

    (run,) = host.run(parameters())

    # Then the probe read back what it wrote, through the file it created
    assert run.code == 0, run.stderr


def test_a_probe_the_file_system_refuses_is_transient_and_undone(tmp_path):
    # Given a file system that refuses the probe (an access point's POSIX user, a file system
    # policy, or another client that chmods the root): a retry may succeed once that is fixed
    host = NamespaceHost(tmp_path, refuses_writes=True)

    (run,) = host.run(parameters())

    assert run.code == 75, run.stderr
    assert "probe" in run.summary["message"]
    assert host.mounts_at(MOUNT_PATH) == []
    assert host.fstab_after == BASE_FSTAB


def test_fstab_is_never_left_truncated_on_a_full_disk(tmp_path):
    # Given the volume holding /etc is full, and a writer takes any block that frees up
    fill = 'dd if=/dev/zero of="$ROOT/etc-overlay/fill.$RANDOM$RANDOM" bs=4k 2>/dev/null'
    host = NamespaceHost(tmp_path, hook=fill, hooked=("cat", "cp", "awk", "mv", "chmod", "chown", "sync"))

    (run,) = host.run(f"{fill}; true", parameters())

    # Then fstab is whole (finding 5), nothing stays mounted, and the failure is transient
    assert host.fstab_after == BASE_FSTAB
    assert run.code == 75, run.stderr
    assert host.mounts_at(MOUNT_PATH) == []


def test_fstab_keeps_its_owner_and_mode_when_rewritten(tmp_path):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(
        "chown 0:4 /etc/fstab && chmod 0640 /etc/fstab",
        parameters(),
        after='stat -c "%u:%g %a %h" /etc/fstab >"$ROOT/fstab-stat"; ls -A /etc | grep -c fstab >"$ROOT/fstabs"',
    )

    assert run.code == 0, run.stderr
    assert (tmp_path / "fstab-stat").read_text() == "0:4 640 1\n"
    assert (tmp_path / "fstabs").read_text() == "1\n", "a temporary copy was left in /etc"
    assert len(_lines_for_path(host.fstab_after)) == 1


@pytest.mark.parametrize(
    "plant",
    [
        "setpriv --reuid=65534 --regid=65534 --clear-groups mkfifo /run/efs-automount/lock",  # open() blocks
        "setpriv --reuid=65534 --regid=65534 --clear-groups ln -s /etc/nologin /run/efs-automount/lock",
        "touch /run/efs-automount/lock && chmod 0666 /run/efs-automount/lock",  # a user could hold flock
    ],
)
def test_a_lock_directory_others_can_write_is_taken_back(tmp_path, plant):
    # Given /run/efs-automount is root's but world-writable, and a user planted `lock` (finding 6)
    host = NamespaceHost(tmp_path, run_timeout=15)

    (run,) = host.run(
        f"mkdir -p /run/efs-automount && chmod 0777 /run/efs-automount && {plant}",
        parameters(),
        after='stat -c "%u %a" /run/efs-automount >"$ROOT/lock-dir"; ! [ -e /etc/nologin ] || touch "$ROOT/nologin"',
    )

    # Then the run neither hangs nor creates the symlink's target, and the directory is root's alone
    assert run.code == 0, run.stderr
    assert not (tmp_path / "nologin").exists()
    assert (tmp_path / "lock-dir").read_text() == "0 700\n"


def test_a_lock_directory_of_another_user_is_refused(tmp_path):
    host = NamespaceHost(tmp_path, run_timeout=15)

    (run,) = host.run("mkdir -p /run/efs-automount && chown 65534 /run/efs-automount", parameters())

    assert run.code == 75, run.stderr
    assert host.mount_calls == []


@pytest.mark.parametrize(
    "spelling", [f"{MOUNT_PATH}/.", "/mnt/efs/./data", "/mnt/efs/x/../data", "/mnt/efs/dat\\141", "/mnt//efs/data/"]
)
def test_another_line_at_the_path_spelled_differently_is_a_conflict(tmp_path, spelling):
    # Given another's line for the same mount point, written as libmount reads it (finding 7)
    theirs = f"192.0.2.66:/evil {spelling} nfs4 defaults 0 0\n"
    host = NamespaceHost(tmp_path, fstab=BASE_FSTAB + theirs)

    (run,) = host.run(parameters())

    assert run.code == 3, run.stderr
    assert host.fstab_after == BASE_FSTAB + theirs
    assert host.mount_calls == []


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
