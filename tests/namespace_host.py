"""A host for running host/mount-efs.sh for real, as root, in a private mount namespace.

This kernel has no NFS client, so NFS and efs-utils mounts are stood in for by a tmpfs
labelled with the source the real helper would show (`127.0.0.1:/` for TLS mounts, with
efs-utils' state file). Everything else is real: fstab and /etc/hosts (private copies
bind-mounted over the originals), name resolution, `mount`, `mountpoint`, `flock`, and the
write/read probe. `findmnt` reports such a tmpfs as nfs4, as it would report the real mount.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "host" / "mount-efs.sh"
FS = "fs-0123456789abcdef0"
REGION = "us-east-1"
DNS_NAME = f"{FS}.efs.{REGION}.amazonaws.com"
BASE_FSTAB = "# /etc/fstab\nUUID=1b2c-root / ext4 defaults,noatime 0 1\ntmpfs /scratch tmpfs defaults 0 0\n"

MOUNT_SHIM = r"""#!/bin/bash
# Stands in for the NFS client and efs-utils: a tmpfs labelled as the real mount would be.
printf '%s\n' "$*" >>"$SHIM_LOG"
type="" opts="" args=()
while (($#)); do
  case "$1" in
    -t) type=$2; shift 2 ;;
    -o) opts=$2; shift 2 ;;
    --) shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [[ $type != nfs4 && $type != efs ]]; then
  exec /usr/bin/mount ${type:+-t "$type"} ${opts:+-o "$opts"} "${args[@]}"
fi
[[ ! -e $SHIM_DIR/mount-fails ]] || exit 32
src=${args[0]} dir=${args[1]} label=${args[0]}
if [[ $type == efs && ,$opts, == *,tls,* ]]; then
  label=127.0.0.1:/
  mkdir -p /var/run/efs
  touch "/var/run/efs/${src%%:*}.$(printf '%s' "${dir#/}" | tr / .).20049"
fi
ro=""
[[ ,$opts, != *,ro,* ]] || ro=,ro
exec /usr/bin/mount -t tmpfs -o "size=8m$ro" "$label" "$dir"
"""

FINDMNT_SHIM = r"""#!/bin/bash
/usr/bin/findmnt "$@" | sed 's/^tmpfs$/nfs4/'
"""

INSTALLING_DNF_SHIM = r"""#!/bin/bash
# A package manager that installs amazon-efs-utils.
printf 'dnf %s\n' "$*" >>"$SHIM_LOG"
printf '#!/bin/bash\nexit 0\n' >"$SHIM_DIR/mount.efs"
chmod +x "$SHIM_DIR/mount.efs"
"""

FAILING_APT_SHIM = r"""#!/bin/bash
printf 'apt-get %s\n' "$*" >>"$SHIM_LOG"
echo "E: Unable to locate package amazon-efs-utils" >&2
exit 100
"""

PRESENT = "#!/bin/bash\nexit 0\n"


def namespace_unavailable() -> str | None:
    """Why the script cannot run for real here, or None."""
    if os.geteuid() != 0:
        return "needs root to mount in a private namespace"
    if not shutil.which("unshare"):
        return "needs unshare (util-linux)"
    trial = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "true"], capture_output=True, text=True, check=False
    )
    if trial.returncode != 0:
        return f"unshare -m is not permitted here: {trial.stderr.strip()}"
    return None


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1].removeprefix("efs-automount: "))


@dataclass
class NamespaceHost:
    """One host: its fstab, hosts file and helpers; `run` executes the script (several times) in it."""

    root: Path
    nfs_client: bool = True
    efs_utils: bool = False
    installable_efs_utils: bool = False
    resolvable: bool = True
    fstab: str = BASE_FSTAB
    mount_fails: bool = False
    premount: str | None = None  # a foreign mount already at /mnt/efs/data, given by its source label
    runs: list[Run] = field(default_factory=list)

    def _prepare(self) -> None:
        etc, shims = self.root / "etc", self.root / "shims"
        etc.mkdir(parents=True)
        shims.mkdir()
        (etc / "fstab").write_text(self.fstab)
        hosts = "127.0.0.1 localhost\n" + (f"10.0.0.17 {DNS_NAME}\n" if self.resolvable else "")
        (etc / "hosts").write_text(hosts)
        (etc / "nsswitch.conf").write_text("hosts: files\n")
        (etc / "resolv.conf").write_text("")
        files = {"mount": MOUNT_SHIM, "findmnt": FINDMNT_SHIM, "apt-get": FAILING_APT_SHIM}
        if self.nfs_client:
            files["mount.nfs4"] = PRESENT
        if self.efs_utils:
            files["mount.efs"] = PRESENT
        if self.installable_efs_utils:
            files["dnf"] = INSTALLING_DNF_SHIM
        for name, text in files.items():
            (shims / name).write_text(text)
            (shims / name).chmod(0o755)
        (self.root / "mount.log").touch()
        if self.mount_fails:
            (shims / "mount-fails").touch()

    def run(self, *environments: dict[str, str], after: str = "") -> list[Run]:
        """Run the script once per environment, in one namespace (state carries over); returns the runs."""
        self._prepare()
        calls = []
        for index, env in enumerate(environments):
            assignments = " ".join(f"{key}={_quote(value)}" for key, value in env.items())
            calls.append(
                f'env -i PATH="$SHIM_DIR:/usr/sbin:/usr/bin:/sbin:/bin" SHIM_DIR="$SHIM_DIR" SHIM_LOG="$SHIM_LOG" '
                f'{assignments} bash "$SCRIPT" >"$ROOT/out.{index}" 2>"$ROOT/err.{index}"; echo $? >"$ROOT/rc.{index}"'
            )
        premount = (
            f"mkdir -p /mnt/efs/data && /usr/bin/mount -t tmpfs {_quote(self.premount)} /mnt/efs/data"
            if self.premount
            else ""
        )
        driver = (
            textwrap.dedent(
                f"""
            set -u
            mount --bind "$ROOT/etc/fstab" /etc/fstab
            mount --bind "$ROOT/etc/hosts" /etc/hosts
            mount --bind "$ROOT/etc/nsswitch.conf" /etc/nsswitch.conf
            mount --bind "$ROOT/etc/resolv.conf" /etc/resolv.conf
            mount -t tmpfs tmpfs /mnt
            mount -t tmpfs tmpfs /run
            {premount}
            """
            )
            + "\n".join(calls)
            + f'\n{after}\nfindmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS -R /mnt >"$ROOT/mounts.json"\n'
        )
        env = {
            "ROOT": str(self.root),
            "SHIM_DIR": str(self.root / "shims"),
            "SHIM_LOG": str(self.root / "mount.log"),
            "SCRIPT": str(SCRIPT),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        subprocess.run(
            ["unshare", "-m", "--propagation", "private", "bash", "-c", driver],
            env=env,
            check=True,
            timeout=120,
        )
        self.runs = [
            Run(
                int((self.root / f"rc.{i}").read_text()),
                (self.root / f"out.{i}").read_text(),
                (self.root / f"err.{i}").read_text(),
            )
            for i in range(len(environments))
        ]
        return self.runs

    @property
    def fstab_after(self) -> str:
        return (self.root / "etc" / "fstab").read_text()

    @property
    def mount_calls(self) -> list[str]:
        """What the script asked `mount` for (NFS or efs-utils)."""
        return [line for line in (self.root / "mount.log").read_text().splitlines() if line.startswith("-t ")]

    @property
    def package_calls(self) -> list[str]:
        return [line for line in (self.root / "mount.log").read_text().splitlines() if not line.startswith("-t ")]

    def mounts_at(self, target: str) -> list[dict]:
        tree = json.loads((self.root / "mounts.json").read_text() or '{"filesystems": []}')
        found: list[dict] = []

        def walk(nodes: list[dict]) -> None:
            for node in nodes:
                if node["target"] == target:
                    found.append(node)
                walk(node.get("children", []))

        walk(tree["filesystems"])
        return found


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def parameters(**overrides: str) -> dict[str, str]:
    """The SSM_* environment SSM gives the script, with overrides."""
    env = {
        "SSM_FileSystemId": FS,
        "SSM_MountPath": "/mnt/efs/data",
        "SSM_Region": REGION,
        "SSM_AccessPointId": "",
        "SSM_MountTargetIp": "",
        "SSM_ReadOnly": "false",
        "SSM_RequireTls": "false",
        "SSM_DnsWaitSeconds": "0",
    }
    env.update(overrides)
    return env
