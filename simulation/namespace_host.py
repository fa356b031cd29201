"""A host for running host/mount-efs.sh for real, as root, in a private mount namespace.

This kernel has no NFS client, so NFS and efs-utils mounts are stood in for by a tmpfs
labelled with the source the real helper would show (`127.0.0.1:/` for TLS mounts, with
efs-utils' state file). Everything else is real: fstab and /etc/hosts (private copies
bind-mounted over the originals), name resolution, `mount`, `mountpoint`, `flock`, and the
write/read probe. `findmnt` reports such a tmpfs as nfs4 with the `addr=` (and, for TLS,
`port=`) option the kernel would show for the server it reached, and the efs-utils stand-in
writes the state file and stunnel configuration efs-utils writes (aws/efs-utils
src/efs_utils_common/proxy.py: `<fs-id>.<path with dots>.<port>` and
`stunnel-config.<same>` with `connect = <dns name or mount target ip>:2049`).
Each namespace is also a PID namespace, so the script's own PID is small and predictable.
/etc is a private overlay on a small tmpfs. `stat -f` reports a tmpfs labelled host:/path as nfs.
Races are played at fixed points: `before_mount` runs in mount's stand-in just before the kernel
resolves the target, and `hook` runs before each of the `hooked` commands.
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
# Stands in for the NFS client and efs-utils: a tmpfs labelled as the real mount would be,
# with the server address it reached recorded for the findmnt stand-in.
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
# The last moment before the kernel resolves the target: where a race on the path would be won.
[[ ! -x $SHIM_DIR/before-mount ]] || "$SHIM_DIR/before-mount" "$dir"
mkdir -p "$SHIM_DIR/fsopts"
record="$SHIM_DIR/fsopts/$(printf '%s' "$dir" | tr / _)"
if [[ $type == efs && ,$opts, == *,tls,* ]]; then
  label=127.0.0.1:/
  fs=${src%%:*}
  name="$fs.$(printf '%s' "${dir#/}" | tr / .).20049"
  connect="$fs.efs.$SSM_Region.amazonaws.com"
  [[ ,$opts, != *,mounttargetip=* ]] || connect=$(printf '%s' ",$opts," | sed 's/.*,mounttargetip=\([^,]*\),.*/\1/')
  [[ ! -e $SHIM_DIR/stunnel-connect ]] || connect=$(cat "$SHIM_DIR/stunnel-connect")
  mkdir -p /var/run/efs
  # efs-utils' state: cert_details of a TLS mount, accessPoint when mounted through one
  # (aws/efs-utils src/efs_utils_common/proxy.py, bootstrap_proxy and write_tunnel_state_file).
  access_point=""
  [[ ,$opts, != *,accesspoint=* ]] || access_point=$(printf '%s' ",$opts," | sed 's/.*,accesspoint=\([^,]*\),.*/\1/')
  printf '{"pid": 1, "mountpoint": "%s", "fsId": "%s", "certificate": "/var/run/efs/%s+/certificate.pem"%s}' \
    "$dir" "$fs" "$name" "${access_point:+, \"accessPoint\": \"$access_point\"}" >"/var/run/efs/$name"
  printf '[efs]\nclient = yes\naccept = 127.0.0.1:20049\nconnect = %s:2049\n' "$connect" \
    >"/var/run/efs/stunnel-config.$name"
  printf 'port=20049,addr=127.0.0.1\n' >"$record"
else
  host=${src%:*}
  addr=$host
  [[ $host =~ ^[0-9.]+$ ]] || addr=$(getent ahostsv4 "$host" | awk 'NR == 1 {print $1}')
  [[ ! -e $SHIM_DIR/nfs-server-addr ]] || addr=$(cat "$SHIM_DIR/nfs-server-addr")
  printf 'vers=4.1,addr=%s\n' "$addr" >"$record"
fi
ro=""
[[ ,$opts, != *,ro,* ]] || ro=,ro
# A file system that refuses every new file (the access point's POSIX user may not write, say).
[[ ! -e $SHIM_DIR/refuses-writes ]] || ro+=,nr_inodes=1
exec /usr/bin/mount -t tmpfs -o "size=8m$ro" "$label" "$dir"
"""

FINDMNT_SHIM = r"""#!/bin/bash
# The real findmnt, with a stand-in tmpfs shown as the nfs4 mount it stands for, options included.
out=$(/usr/bin/findmnt "$@") || exit $?
mountpoint="" previous=""
for argument in "$@"; do
  [[ $previous != --mountpoint ]] || mountpoint=$argument
  previous=$argument
done
extra=""
if [[ -n $mountpoint && -e "$SHIM_DIR/fsopts/$(printf '%s' "$mountpoint" | tr / _)" ]]; then
  extra=$(cat "$SHIM_DIR/fsopts/$(printf '%s' "$mountpoint" | tr / _)")
fi
while IFS= read -r line; do
  case "$line" in
    tmpfs) line=nfs4 ;;
    "tmpfs "*) line="nfs4 ${line#tmpfs }${extra:+,$extra}" ;;
  esac
  printf '%s\n' "$line"
done <<<"$out"
"""

STAT_SHIM = r"""#!/bin/bash
# The real stat, except that `stat -f` of a stand-in tmpfs (labelled host:/path) says nfs.
if [[ ${1-} == -f ]]; then
  source=$(/usr/bin/findmnt -n -o SOURCE --target "${!#}" 2>/dev/null | tail -n 1)
  if [[ $source == *:/* ]]; then
    echo nfs
    exit 0
  fi
fi
exec /usr/bin/stat "$@"
"""

HOOKED_COMMAND = r"""#!/bin/bash
# Someone else's move, made whenever the script runs this command; then the real command.
"$SHIM_DIR/hook" "${0##*/}" "$@" </dev/null >/dev/null 2>&1 || true
real=$(PATH=${PATH#"$SHIM_DIR:"} command -v "${0##*/}")
exec "$real" "$@"
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
        ["unshare", "-m", "-p", "-f", "--propagation", "private", "true"], capture_output=True, text=True, check=False
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
    dns_name: str = DNS_NAME  # the file system's DNS name, which /etc/hosts resolves when resolvable
    dns_address: str = "10.0.0.17"  # ... to this address
    script: Path = SCRIPT  # what runs: the script itself, or the mount document's runCommand
    fstab: str = BASE_FSTAB
    mount_fails: bool = False
    premount: str | None = None  # a mount already at /mnt/efs/data, given by its source label
    premount_addr: str = "192.0.2.66"  # ... and the server address the kernel shows for it
    trace: bool = False  # run the script under strace (strace.<n> in root)
    ecs_config: str | None = None  # the text of /etc/ecs/ecs.config (None: no ECS config on the host)
    refuses_writes: bool = False  # the mounted file system refuses every new file
    before_mount: str | None = None  # shell run by `mount` just before the kernel resolves the target
    hook: str | None = None  # shell run (as root: another client, another user) before each hooked command
    hooked: tuple[str, ...] = ()  # the commands that run `hook` first
    run_timeout: int = 100  # seconds each run may take before it is killed (exit 124)
    runs: list[Run] = field(default_factory=list)

    def _prepare(self) -> None:
        etc, shims = self.root / "etc", self.root / "shims"
        etc.mkdir(parents=True)
        shims.mkdir()
        (etc / "fstab").write_text(self.fstab)
        hosts = "127.0.0.1 localhost\n" + (f"{self.dns_address} {self.dns_name}\n" if self.resolvable else "")
        (etc / "hosts").write_text(hosts)
        (etc / "nsswitch.conf").write_text("hosts: files\n")
        (etc / "resolv.conf").write_text("")
        files = {"mount": MOUNT_SHIM, "findmnt": FINDMNT_SHIM, "stat": STAT_SHIM, "apt-get": FAILING_APT_SHIM}
        if self.before_mount is not None:
            files["before-mount"] = "#!/bin/bash\n" + self.before_mount + "\n"
        if self.hook is not None:
            files["hook"] = "#!/bin/bash\n" + self.hook + "\n"
        for command in self.hooked:
            assert command not in files, f"{command} is already a stand-in"
            files[command] = HOOKED_COMMAND
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
        if self.refuses_writes:
            (shims / "refuses-writes").touch()

    def run(self, *steps: dict[str, str] | str, after: str = "") -> list[Run]:
        """Run the script once per environment, in one namespace (state carries over); returns the runs.

        A step that is a string is a shell snippet run as root in the namespace between the runs."""
        self._prepare()
        calls, runs = [], 0
        for step in steps:
            if isinstance(step, str):
                calls.append(step)
                continue
            assignments = " ".join(f"{key}={_quote(value)}" for key, value in step.items())
            tracer = (
                f'strace -f -y -qq -e trace=open,openat,openat2,creat -o "$ROOT/strace.{runs}" ' if self.trace else ""
            )
            calls.append(
                f"{tracer}timeout -s KILL {self.run_timeout} "
                f'env -i PATH="$SHIM_DIR:/usr/sbin:/usr/bin:/sbin:/bin" SHIM_DIR="$SHIM_DIR" ROOT="$ROOT" '
                f'SHIM_LOG="$SHIM_LOG" {assignments} bash "$SCRIPT" >"$ROOT/out.{runs}" 2>"$ROOT/err.{runs}"; '
                f'echo $? >"$ROOT/rc.{runs}"'
            )
            runs += 1
        premount = (
            f"mkdir -p /mnt/efs/data && /usr/bin/mount -t tmpfs {_quote(self.premount)} /mnt/efs/data && "
            f'mkdir -p "$SHIM_DIR/fsopts" && '
            f'echo {_quote("addr=" + self.premount_addr)} >"$SHIM_DIR/fsopts/_mnt_efs_data"'
            if self.premount
            else ""
        )
        # /etc is a private overlay (on a 16 MB tmpfs, which a test may fill), never the machine's own:
        # fstab is a file in it (so the script can rename over it) copied back to $ROOT/etc/fstab at the end.
        etc = (
            'mkdir -p "$ROOT/etc-overlay" && mount -t tmpfs -o size=16m tmpfs "$ROOT/etc-overlay" && '
            'mkdir "$ROOT/etc-overlay/upper" "$ROOT/etc-overlay/work" && '
            "mount -t overlay overlay /etc "
            '-o "lowerdir=/etc,upperdir=$ROOT/etc-overlay/upper,workdir=$ROOT/etc-overlay/work" && '
            'cat "$ROOT/etc/fstab" >/etc/fstab'
        )
        ecs = (
            f"mkdir -p /etc/ecs && printf %s {_quote(self.ecs_config)} >/etc/ecs/ecs.config"
            if self.ecs_config is not None
            else ""
        )
        driver = (
            textwrap.dedent(
                f"""
            set -u
            {etc}
            {ecs}
            mount --bind "$ROOT/etc/hosts" /etc/hosts
            mount --bind "$ROOT/etc/nsswitch.conf" /etc/nsswitch.conf
            mount --bind "$ROOT/etc/resolv.conf" /etc/resolv.conf
            mount -t tmpfs tmpfs /mnt
            mount -t tmpfs tmpfs /run
            {premount}
            """
            )
            + "\n".join(calls)
            + f"\n{after}\n"
            + 'cat /etc/fstab >"$ROOT/etc/fstab"\n'
            + 'findmnt -J -o TARGET,SOURCE,FSTYPE,OPTIONS -R /mnt >"$ROOT/mounts.json"\n'
        )
        env = {
            "ROOT": str(self.root),
            "SHIM_DIR": str(self.root / "shims"),
            "SHIM_LOG": str(self.root / "mount.log"),
            "SCRIPT": str(self.script),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        subprocess.run(
            ["unshare", "-m", "-p", "-f", "--propagation", "private", "bash", "-c", driver],
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
            for i in range(runs)
        ]
        return self.runs

    def traced_opens(self, index: int = 0) -> list[str]:
        """The open calls of run `index` as strace -y wrote them (trace=True)."""
        return (self.root / f"strace.{index}").read_text().splitlines()

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
