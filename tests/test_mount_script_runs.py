"""host/mount-efs.sh run for real as root in private mount namespaces (see simulation/namespace_host.py)."""

from __future__ import annotations

import pytest

from simulation.namespace_host import BASE_FSTAB, DNS_NAME, FS, NamespaceHost, namespace_unavailable, parameters

REASON = namespace_unavailable()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"mount script not run for real: {REASON}")

NFS_LINE = (
    f"{DNS_NAME}:/ /mnt/efs/data nfs4 "
    "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev,x-efs-automount 0 0"
)


def _lines_for_path(fstab: str) -> list[str]:
    return [line for line in fstab.splitlines() if not line.startswith("#") and line.split()[1:2] == ["/mnt/efs/data"]]


def test_first_run_mounts_with_nfs_writes_one_fstab_line_and_verifies(tmp_path):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(parameters())

    assert run.code == 0, run.stderr
    assert run.summary == run.summary | {"status": "mounted", "helper": "nfs", "changed": True, "exit_code": 0}
    assert host.fstab_after == BASE_FSTAB + NFS_LINE + "\n"
    assert host.mount_calls == [
        "-t nfs4 -o nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev "
        f"-- {DNS_NAME}:/ /mnt/efs/data"
    ]
    (mounted,) = host.mounts_at("/mnt/efs/data")
    assert mounted["source"] == f"{DNS_NAME}:/"
    assert "rw" in mounted["options"].split(",")


def test_second_run_changes_nothing(tmp_path):
    host = NamespaceHost(tmp_path)

    first, second = host.run(parameters(), parameters())

    assert (first.code, second.code) == (0, 0)
    assert second.summary["changed"] is False
    assert len(host.mount_calls) == 1
    assert len(host.mounts_at("/mnt/efs/data")) == 1
    assert _lines_for_path(host.fstab_after) == [NFS_LINE]


def test_changed_options_replace_our_line_and_leave_others_untouched(tmp_path):
    old = f"{DNS_NAME}:/ /mnt/efs/data nfs4 defaults,x-efs-automount 0 0\n"
    host = NamespaceHost(tmp_path, fstab=BASE_FSTAB + old)

    (run,) = host.run(parameters())

    assert run.code == 0, run.stderr
    assert host.fstab_after == BASE_FSTAB + NFS_LINE + "\n"


def test_unresolvable_name_falls_back_to_the_mount_target_ip(tmp_path):
    host = NamespaceHost(tmp_path, resolvable=False)

    (run,) = host.run(parameters(SSM_MountTargetIp="10.0.1.25"))

    assert run.code == 0, run.stderr
    assert "does not resolve" in run.stderr
    assert host.mount_calls[-1].endswith("-- 10.0.1.25:/ /mnt/efs/data")
    assert _lines_for_path(host.fstab_after)[0].startswith("10.0.1.25:/ /mnt/efs/data nfs4 ")


def test_unresolvable_name_without_an_ip_is_transient(tmp_path):
    host = NamespaceHost(tmp_path, resolvable=False)

    (run,) = host.run(parameters())

    assert run.code == 75
    assert run.summary["status"] == "failed"
    assert host.mount_calls == []


def test_efs_utils_present_mounts_with_tls(tmp_path):
    host = NamespaceHost(tmp_path, efs_utils=True)

    (run,) = host.run(parameters())

    assert run.code == 0, run.stderr
    assert run.summary["helper"] == "efs-utils"
    assert host.mount_calls == [f"-t efs -o _netdev,tls -- {FS}:/ /mnt/efs/data"]
    assert _lines_for_path(host.fstab_after) == [f"{FS}:/ /mnt/efs/data efs _netdev,tls,x-efs-automount 0 0"]
    (mounted,) = host.mounts_at("/mnt/efs/data")
    assert mounted["source"] == "127.0.0.1:/"


def test_efs_utils_absent_is_installed_with_the_package_manager(tmp_path):
    host = NamespaceHost(tmp_path, installable_efs_utils=True)

    (run,) = host.run(parameters())

    assert run.code == 0, run.stderr
    assert host.package_calls == ["dnf install -y amazon-efs-utils"]
    assert host.mount_calls[0].startswith("-t efs -o _netdev,tls ")


def test_efs_utils_absent_and_not_installable_falls_back_to_nfs(tmp_path):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(parameters())

    assert run.code == 0, run.stderr
    assert host.package_calls == ["apt-get install -y amazon-efs-utils"]
    assert run.summary["helper"] == "nfs"


def test_access_point_mounts_with_efs_utils_tls_and_iam(tmp_path):
    host = NamespaceHost(tmp_path, efs_utils=True)

    (run,) = host.run(parameters(SSM_AccessPointId="fsap-0123456789abcdef0"))

    assert run.code == 0, run.stderr
    assert host.mount_calls == [f"-t efs -o _netdev,tls,iam,accesspoint=fsap-0123456789abcdef0 -- {FS}:/ /mnt/efs/data"]


def test_access_point_never_falls_back_to_plain_nfs(tmp_path):
    host = NamespaceHost(tmp_path, efs_utils=False)

    (run,) = host.run(parameters(SSM_AccessPointId="fsap-0123456789abcdef0"))

    assert run.code == 4
    assert "access point needs amazon-efs-utils" in run.summary["message"]
    assert host.mount_calls == []
    assert host.fstab_after == BASE_FSTAB


def test_no_helper_at_all_is_permanent(tmp_path):
    host = NamespaceHost(tmp_path, nfs_client=False)

    (run,) = host.run(parameters())

    assert run.code == 4
    assert host.fstab_after == BASE_FSTAB


def test_another_file_system_at_the_path_is_a_conflict_and_stays_mounted(tmp_path):
    host = NamespaceHost(tmp_path, premount="nfs.example.com:/export")

    (run,) = host.run(parameters())

    assert run.code == 3
    assert "another file system is mounted" in run.summary["message"]
    (mounted,) = host.mounts_at("/mnt/efs/data")
    assert mounted["source"] == "nfs.example.com:/export"
    assert host.fstab_after == BASE_FSTAB


def test_someone_elses_fstab_line_at_the_path_is_a_conflict_and_kept(tmp_path):
    theirs = "nfs.example.com:/export /mnt/efs/data nfs4 defaults 0 0\n"
    host = NamespaceHost(tmp_path, fstab=BASE_FSTAB + theirs)

    (run,) = host.run(parameters())

    assert run.code == 3
    assert host.fstab_after == BASE_FSTAB + theirs
    assert host.mounts_at("/mnt/efs/data") == []


def test_read_only_mounts_read_only_without_a_write_probe(tmp_path):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(parameters(SSM_ReadOnly="true"))

    assert run.code == 0, run.stderr
    assert _lines_for_path(host.fstab_after)[0].split()[3].endswith(",_netdev,ro,x-efs-automount")
    (mounted,) = host.mounts_at("/mnt/efs/data")
    assert "ro" in mounted["options"].split(",")


def test_failed_mount_is_transient_and_leaves_nothing_mounted(tmp_path):
    host = NamespaceHost(tmp_path, mount_fails=True)

    (run,) = host.run(parameters())

    assert run.code == 75
    assert run.summary["message"] == "mount failed or timed out"
    assert host.mounts_at("/mnt/efs/data") == []


def test_probe_leaves_no_file_behind(tmp_path):
    host = NamespaceHost(tmp_path)

    host.run(parameters(), after='ls -A /mnt/efs/data >"$ROOT/listing"')

    assert (tmp_path / "listing").read_text() == ""


def test_second_run_over_a_tls_mount_recognises_it_by_the_efs_utils_state(tmp_path):
    host = NamespaceHost(tmp_path, efs_utils=True)

    first, second = host.run(parameters(), parameters())

    assert (first.code, second.code) == (0, 0), second.stderr
    assert second.summary["changed"] is False
    assert len(host.mount_calls) == 1


def test_required_tls_never_falls_back_to_plain_nfs(tmp_path):
    host = NamespaceHost(tmp_path)

    (run,) = host.run(parameters(SSM_RequireTls="true"))

    assert run.code == 4
    assert "TLS is required" in run.summary["message"]
    assert host.mount_calls == []


def test_required_tls_with_efs_utils_mounts_with_tls(tmp_path):
    host = NamespaceHost(tmp_path, efs_utils=True)

    (run,) = host.run(parameters(SSM_RequireTls="true"))

    assert run.code == 0, run.stderr
    assert host.mount_calls == [f"-t efs -o _netdev,tls -- {FS}:/ /mnt/efs/data"]
