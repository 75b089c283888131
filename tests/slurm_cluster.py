"""A real, private, single-node SLURM cluster for the test-suite.

``LocalSlurmCluster(workdir)`` writes its own slurm.conf (private ports, state,
spool, pid and log files inside ``workdir``), starts its own ``munged`` (private
key and socket), ``slurmctld -D`` and ``slurmd -D`` as child processes, and
waits until ``sinfo`` reports the node idle. ``stop()`` cancels the cluster's
jobs and terminates exactly the processes it started (plus the job step
daemons forked by its own slurmd), never by name.

Binaries come from Debian's ``slurmctld slurmd slurm-client munge`` packages
(see ``.ci/install_slurm.sh``); tested with slurm-wlm 22.05.8 / munge 0.5.15.
Must run as root (SlurmUser=root; slurmd needs root to launch jobs).

Subprocesses that talk to the cluster (sbatch, sinfo, submitit, ...) need
``cluster.env`` merged into their environment: ``SLURM_CONF`` points at the
private slurm.conf, and ``PATH`` starts with ``tests/bin`` which holds a
``sacct`` shim (there is no slurmdbd, so the real sacct cannot answer;
submitit polls ``sacct`` for job states).

Typical use::

    with LocalSlurmCluster(tmp_path / "slurm") as cluster:
        subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.environ(), check=True)
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

SHIM_DIR = Path(__file__).resolve().parent / "bin"
# Credential lifetime (s): a requeued job may start again only once its revoked credential expired (120 s by
# default); long enough for a job step to launch on a loaded 2-core machine.
CRED_EXPIRE_S = 20

# Debian puts the daemons in /usr/sbin, which is not on a normal user's PATH.
_SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")

REQUIRED_BINARIES = (
    "slurmctld",
    "slurmd",
    "sinfo",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
    "srun",
    "munged",
    "munge",
)

# Variables of an enclosing SLURM job/allocation that would change what
# sbatch/srun do against the private cluster.
_FOREIGN_ENV_PREFIXES = ("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SACCT_")


class SlurmClusterError(RuntimeError):
    """The private SLURM cluster could not be started."""


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(_SBIN_DIRS)
    return shutil.which(name, path=path)


def slurm_available() -> tuple[bool, str]:
    """Whether a private cluster can be started here: (ok, reason if not)."""
    missing = [b for b in REQUIRED_BINARIES if _which(b) is None]
    if missing:
        return False, (
            f"SLURM/munge binaries not found: {', '.join(missing)} "
            "(install them with .ci/install_slurm.sh: Debian slurmctld slurmd slurm-client munge)"
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return False, "the private SLURM test cluster must run as root (SlurmUser=root, slurmd launches jobs)"
    return True, ""


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))  # slurm daemons listen on INADDR_ANY
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"--- {path}: <missing>"
    return f"--- {path} (last {lines} lines):\n" + "\n".join(text.splitlines()[-lines:])


def _proc_start_time(pid: int) -> str | None:
    """Start time of a process (field 22 of /proc/pid/stat), to detect pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(pid: int) -> list[int]:
    children = _children_map()
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _node_hardware() -> dict[str, int]:
    """Node topology as slurmd detects it (``slurmd -C``), with a fallback."""
    hw: dict[str, int] = {}
    slurmd = _which("slurmd")
    if slurmd:
        try:
            out = subprocess.run(
                [slurmd, "-C"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        first = out.splitlines()[0] if out.strip() else ""
        for key in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore", "RealMemory"):
            m = re.search(rf"\b{key}=(\d+)", first)
            if m:
                hw[key] = int(m.group(1))
    if "CPUs" not in hw:
        hw = {"CPUs": os.cpu_count() or 1}
    if "RealMemory" not in hw:
        try:
            meminfo = Path("/proc/meminfo").read_text()
            hw["RealMemory"] = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)) // 1024
        except (OSError, AttributeError):
            hw["RealMemory"] = 1024
    return hw


class LocalSlurmCluster:
    """A private single-node SLURM cluster (munged + slurmctld + slurmd)."""

    cluster_name = "vjepatest"
    partition = "debug"

    def __init__(self, workdir: Path | str, start_timeout: float = 60.0) -> None:
        self.workdir = Path(workdir).resolve()
        self.start_timeout = start_timeout
        self.nodename = socket.gethostname().split(".")[0] or "localhost"
        self.conf_path = self.workdir / "etc" / "slurm.conf"
        self.log_dir = self.workdir / "log"
        self.jobcomp_log = self.log_dir / "jobcomp.log"
        self._procs: dict[str, subprocess.Popen] = {}
        self._munge_dir: Path | None = None  # short world-traversable dir for the socket
        self._started = False
        self.ctld_port = self.slurmd_port = 0
        self.startup_seconds: float | None = None

    # ------------------------------------------------------------------ env
    @property
    def munge_socket(self) -> Path:
        if self._munge_dir is None:
            raise SlurmClusterError("cluster not started")
        return self._munge_dir / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """Variables a subprocess needs to use this cluster (merge into os.environ)."""
        path = os.environ.get("PATH", os.defpath)
        parts = [p for p in path.split(os.pathsep) if p and p != str(SHIM_DIR)]
        # make sure slurm's sbin tools are reachable too
        parts += [d for d in _SBIN_DIRS if d not in parts]
        return {"SLURM_CONF": str(self.conf_path), "PATH": os.pathsep.join([str(SHIM_DIR), *parts])}

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """A full environment for subprocesses: ``base`` (default os.environ)
        without variables of an enclosing SLURM job, plus ``self.env``."""
        base = dict(os.environ if base is None else base)
        for key in list(base):
            if key.startswith(_FOREIGN_ENV_PREFIXES):
                del base[key]
        base.update(self.env)
        return base

    def foreign_env_keys(self) -> list[str]:
        return [k for k in os.environ if k.startswith(_FOREIGN_ENV_PREFIXES) and k not in self.env]

    # ----------------------------------------------------------- lifecycle
    def __enter__(self) -> LocalSlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._started:
            return
        ok, reason = slurm_available()
        if not ok:
            raise SlurmClusterError(reason)
        t0 = time.monotonic()
        self._started = True
        atexit.register(self.stop)
        try:
            self._prepare_dirs()
            self._start_munge()
            self.ctld_port, self.slurmd_port = _free_ports(2)
            self._write_conf()
            env = self.environ()
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf_path)], env)
            self._spawn(
                "slurmd", [_which("slurmd"), "-D", "-N", self.nodename, "-f", str(self.conf_path)], env
            )
            self._wait_idle()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0

    def _prepare_dirs(self) -> None:
        for sub in ("etc", "log", "run", "state", "spool", "munge"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        # munged insists that every directory above its socket is traversable
        # by everyone (pytest's tmp dirs are 0700) and AF_UNIX paths are short:
        # put the socket in a fresh 0755 dir directly under /tmp.
        self._munge_dir = Path(tempfile.mkdtemp(prefix="vjepa-munge-", dir="/tmp"))
        self._munge_dir.chmod(0o755)
        (self.workdir / "etc" / "plugstack.conf").write_text("")

    def _start_munge(self) -> None:
        mdir = self.workdir / "munge"
        mdir.chmod(0o700)
        key = mdir / "munge.key"
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(1024))
        key.chmod(0o600)
        self._spawn(
            "munged",
            [
                _which("munged"),
                "-F",
                f"--socket={self.munge_socket}",
                f"--key-file={key}",
                f"--pid-file={mdir / 'munged.pid'}",
                f"--seed-file={mdir / 'munged.seed'}",
                f"--log-file={self.log_dir / 'munged.log'}",
            ],
            os.environ.copy(),
        )
        deadline = time.monotonic() + 15
        while True:
            self._check_alive()
            if self.munge_socket.exists():
                probe = subprocess.run(
                    f"'{_which('munge')}' -n -S '{self.munge_socket}' | '{_which('unmunge')}' "
                    f"-S '{self.munge_socket}'",
                    shell=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                if probe.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise SlurmClusterError("munged did not come up\n" + self._logs())
            time.sleep(0.1)

    def _write_conf(self) -> None:
        hw = _node_hardware()
        mem = max(1, int(hw["RealMemory"] * 0.9))  # a bit below what slurmd detects
        topo = " ".join(
            f"{k}={hw[k]}"
            for k in ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
            if k in hw
        )
        w = self.workdir
        conf = f"""\
# Private single-node test cluster written by tests/slurm_cluster.py
ClusterName={self.cluster_name}
SlurmctldHost=localhost
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket},cred_expire={CRED_EXPIRE_S}
StateSaveLocation={w / "state"}
SlurmdSpoolDir={w / "spool"}
SlurmctldPidFile={w / "run" / "slurmctld.pid"}
SlurmdPidFile={w / "run" / "slurmd.pid"}
SlurmctldLogFile={self.log_dir / "slurmctld.log"}
SlurmdLogFile={self.log_dir / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig={w / "etc" / "plugstack.conf"}
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp_log}
SchedulerType=sched/backfill
# run the periodic schedulers every second: job arrays (submitit map_array) start in ~1 s, not ~5 s
SchedulerParameters=sched_interval=1,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
SlurmdTimeout=300
NodeName={self.nodename} NodeHostname={self.nodename} NodeAddr=127.0.0.1 {topo} RealMemory={mem} State=UNKNOWN
PartitionName={self.partition} Nodes={self.nodename} Default=YES MaxTime=INFINITE State=UP
"""
        self.conf_path.write_text(conf)

    def _spawn(self, name: str, cmd: list[str | None], env: dict[str, str]) -> None:
        out = open(self.log_dir / f"{name}.out", "ab")  # noqa: SIM115 (kept open by the child)
        try:
            proc = subprocess.Popen(
                [str(c) for c in cmd],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,  # keep terminal signals (Ctrl-C) for us to handle
            )
        finally:
            out.close()
        self._procs[name] = proc
        self._write_pids()

    def _write_pids(self) -> None:
        pids = {name: p.pid for name, p in self._procs.items()}
        (self.workdir / "run" / "pids.json").write_text(json.dumps(pids, indent=1))

    @property
    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self._procs.items()}

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            rc = proc.poll()
            if rc is not None:
                raise SlurmClusterError(f"{name} exited early with status {rc}\n" + self._logs())

    def _logs(self) -> str:
        files: Iterable[Path] = sorted(self.log_dir.glob("*")) if self.log_dir.is_dir() else []
        return "\n".join(_tail(f) for f in files if f.name != "jobcomp.log")

    def _run(self, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(cmd),
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _wait_idle(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = ""
        while True:
            self._check_alive()
            try:
                res = self._run("sinfo", "-h", "-N", "-n", self.nodename, "-o", "%T|%E", timeout=15)
                last = (res.stdout + res.stderr).strip()
                state = res.stdout.strip().split("|")[0] if res.returncode == 0 else ""
                if state == "idle":
                    return
                if state.startswith("inval"):  # slurmctld rejected the node config: no point waiting
                    raise SlurmClusterError(
                        f"SLURM node {self.nodename!r} is INVALID ({last!r})\n" + self._logs()
                    )
            except subprocess.TimeoutExpired:
                last = "sinfo timed out"
            if time.monotonic() > deadline:
                raise SlurmClusterError(
                    f"SLURM node {self.nodename!r} not idle after {self.start_timeout:.0f}s "
                    f"(last sinfo: {last!r})\n" + self._logs()
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Cancel the cluster's jobs, stop its daemons. Idempotent."""
        if not self._started:
            return
        self._started = False
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass
        ctld = self._procs.get("slurmctld")
        slurmd = self._procs.get("slurmd")
        if ctld is not None and ctld.poll() is None:
            self._cancel_all_jobs()
        # job step daemons (slurmstepd) of *our* slurmd, with their start times
        steps: dict[int, str | None] = {}
        if slurmd is not None and slurmd.poll() is None:
            steps = {pid: _proc_start_time(pid) for pid in _descendants(slurmd.pid)}
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self._procs.get(name)
            if proc is not None:
                _terminate(proc)
        deadline = time.monotonic() + 5
        while steps and time.monotonic() < deadline:
            steps = {p: t for p, t in steps.items() if t is not None and _proc_start_time(p) == t}
            if steps:
                time.sleep(0.1)
        for pid in steps:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self._procs.clear()
        if self._munge_dir is not None:
            shutil.rmtree(self._munge_dir, ignore_errors=True)
            self._munge_dir = None

    def _cancel_all_jobs(self) -> None:
        try:
            res = self._run("squeue", "-h", "-o", "%A", timeout=15)
            ids = res.stdout.split()
            if ids:
                self._run("scancel", *ids, timeout=15)
            deadline = time.monotonic() + 15
            while ids and time.monotonic() < deadline:
                time.sleep(0.2)
                ids = self._run("squeue", "-h", "-o", "%A", timeout=15).stdout.split()
        except (OSError, subprocess.TimeoutExpired):
            pass


def _terminate(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    except OSError:
        pass
