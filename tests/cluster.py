"""A real single-node cluster for tests and benchmarks: munged, slurmctld + slurmd and a PostgreSQL server.

    with cluster.running(tmp) as c:      # munged, slurmctld, slurmd, postgres, each in tmp
        c.env                            # SLURM_CONF, PGPASSFILE: what clients (sbatch, squeue, psql) need
        c.db_url                         # postgresql://grader@127.0.0.1:PORT/gradebook (password in PGPASSFILE)

Each daemon runs in the foreground of a process this module starts, on a free
localhost port, with its state, spool, socket and log in the temporary folder;
`running` waits until each one answers, and on leaving (also after a failure)
stops exactly the processes it started, by pid. A daemon that cannot start
raises DaemonError with the reason and the tail of its log: a test then fails
with that reason, never skips. Debian's packages: `scripts/setup_system.py`
installs slurm-wlm, munge and postgresql (the "cluster" need).

Slurm in a container: ProctrackType=proctrack/linuxproc and TaskPlugin=task/none
(no cgroups needed), SlurmUser=root, no accounting database (sacct is then
unavailable: the grader reads job states from squeue and `scontrol show job`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scripts import setup_system

MUNGE_KEY = Path(setup_system.MUNGE_KEY)
DB_USER, DB_NAME, DB_PASSWORD = "grader", "gradebook", "not-in-the-repository"


class DaemonError(RuntimeError):
    """A daemon could not be started (message: which, why, and its log's tail)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tool(name: str) -> str:
    """The path of a daemon or client; PostgreSQL's from Debian's versioned folder (setup_system finds it)."""
    postgres = setup_system.postgres_bin()
    if postgres and os.access(os.path.join(postgres, name), os.X_OK):
        return os.path.join(postgres, name)
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise DaemonError(f"{name} not found; {setup_system.find_cluster()[1]}")
    return found


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class Cluster:
    folder: Path
    env: dict = field(default_factory=dict)
    db_url: str = ""
    partition: str = "grading"
    node: str = ""
    processes: list = field(default_factory=list)  # (name, Popen, log path), in start order
    private: list = field(default_factory=list)  # folders of daemons that run as another user

    def private_folder(self, name: str, entry) -> Path:
        """A new folder under /tmp owned by `entry` (a daemon user cannot reach into pytest's 0700 folders)."""
        path = Path(tempfile.mkdtemp(prefix=f"test-cluster-{name}-"))
        self.private.append(path)
        if entry is not None:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    def start(self, name: str, command: list[str], log: Path, *, user: str | None = None, ready=None,
              timeout: float = 60.0) -> subprocess.Popen:
        """Start `command` in the foreground of a new process (as `user`), wait until `ready()` is true."""
        preexec = _switch_to(pwd.getpwnam(user)) if user else None
        handle = open(log, "ab")
        try:
            process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       preexec_fn=preexec, env={**os.environ, **self.env}, start_new_session=True)
        finally:
            handle.close()
        self.processes.append((name, process, log))
        deadline = time.monotonic() + timeout
        while not (ready is None or ready()):
            if process.poll() is not None:
                raise DaemonError(f"{name} exited with status {process.returncode} while starting "
                                  f"({' '.join(command)}); its log ends:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise DaemonError(f"{name} did not become ready within {timeout:.0f} s; its log ends:\n{_tail(log)}")
            time.sleep(0.2)
        return process

    def stop(self) -> list[str]:
        """Stop every process started here (newest first): SIGTERM, then SIGKILL; returns what had to be killed.
        Jobs still in this private controller's queue (a test that failed midway) are cancelled first, so
        no task outlives its slurmd."""
        if any(name == "slurmctld" and process.poll() is None for name, process, _ in self.processes):
            jobs = self.run("squeue", "-h", "-o", "%A", check=False, timeout=30).stdout.split()
            if jobs:
                self.run("scancel", *sorted(set(jobs)), check=False, timeout=30)
                deadline = time.monotonic() + 30
                while self.run("squeue", "-h", check=False, timeout=30).stdout.strip() and time.monotonic() < deadline:
                    time.sleep(0.5)
        killed = []
        for name, process, _ in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=20)
                    killed.append(name)
        self.processes.clear()
        for path in self.private:
            shutil.rmtree(path, ignore_errors=True)
        self.private.clear()
        return killed

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """A client command (sbatch, squeue, scontrol, psql) with this cluster's environment."""
        result = subprocess.run(command, env={**os.environ, **self.env}, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode:
            raise DaemonError(f"`{' '.join(command)}` exited {result.returncode}: {result.stderr.strip()}")
        return result

    def logs(self) -> str:
        """The tail of every daemon's log (for a failing test's message)."""
        return "\n".join(f"--- {name} ({log})\n{_tail(log, 8)}" for name, _, log in self.processes)


# ---- munge ----------------------------------------------------------------------------------------------

def start_munge(cluster: Cluster) -> str:
    """munged as the munge user, its socket in the temporary folder; returns the socket path."""
    munged = _tool("munged")
    if not MUNGE_KEY.is_file():
        raise DaemonError(f"no {MUNGE_KEY}: install munge (Debian's package creates the key)")
    entry = pwd.getpwuid(MUNGE_KEY.stat().st_uid)
    user = entry.pw_name if os.geteuid() == 0 else None
    folder = cluster.private_folder("munge", entry if user else None)
    sock = folder / "munge.socket"
    log = folder / "munged.out"  # written by root (our end of its stdout); munged.log by munged
    cluster.start("munged", [munged, "--foreground", "--force", f"--socket={sock}", f"--key-file={MUNGE_KEY}",
                             f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munged.seed'}",
                             f"--log-file={folder / 'munged.log'}", "--num-threads=2"],
                  log, user=user, ready=sock.exists)
    return str(sock)


# ---- slurm ----------------------------------------------------------------------------------------------

SLURM_CONF = """\
ClusterName=vgtest
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
MaxArraySize=100001
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName={partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""


def start_slurm(cluster: Cluster, munge_socket: str, *, cpus: int | None = None) -> None:
    """slurmctld and slurmd for one node named `hostname -s`, its CPUs, a partition "grading"."""
    slurmctld, slurmd = _tool("slurmctld"), _tool("slurmd")
    folder = cluster.folder / "slurm"
    for sub in ("state", "spool"):
        (folder / sub).mkdir(parents=True)
    cluster.node = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(SLURM_CONF.format(node=cluster.node, ctld_port=free_port(), d_port=free_port(),
                                      munge_socket=munge_socket, folder=folder, cpus=cpus or os.cpu_count() or 1,
                                      partition=cluster.partition))
    cluster.env["SLURM_CONF"] = str(conf)

    def controller_answers() -> bool:
        return cluster.run("scontrol", "ping", check=False, timeout=20).stdout.count("UP") > 0

    cluster.start("slurmctld", [slurmctld, "-D", "-i", "-f", str(conf)], folder / "slurmctld.log",
                  ready=controller_answers)

    def node_idle() -> bool:
        state = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=20).stdout.strip()
        return state in ("idle", "mixed", "allocated")

    cluster.start("slurmd", [slurmd, "-D", "-f", str(conf)], folder / "slurmd.log", ready=node_idle)


# ---- postgresql -----------------------------------------------------------------------------------------

def start_postgres(cluster: Cluster, *, user: str = "postgres") -> str:
    """A PostgreSQL server (initdb + postgres) in the temporary folder, as a non-root user, password login
    on 127.0.0.1; returns the database URL (no password: it is in the PGPASSFILE cluster.env names)."""
    initdb, postgres = _tool("initdb"), _tool("postgres")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        entry = pwd.getpwnam("nobody")
    run_as = entry.pw_name if os.geteuid() == 0 else None
    folder = cluster.private_folder("postgres", entry if run_as else None)
    data, sockets, secret, log = folder / "data", folder / "socket", folder / "pwfile", folder / "postgres.log"
    with _as(entry if run_as else None):
        data.mkdir(mode=0o700)
        sockets.mkdir()
        secret.write_text(DB_PASSWORD + "\n")
    init = subprocess.run([initdb, "-D", str(data), "-U", DB_USER, f"--pwfile={secret}", "--auth=scram-sha-256",
                           "-E", "UTF8", "--no-sync"],
                          capture_output=True, text=True, timeout=120, preexec_fn=_switch_to(entry) if run_as else None)
    secret.unlink()
    if init.returncode:
        raise DaemonError(f"initdb failed ({init.returncode}): {(init.stderr or init.stdout)[-1500:]}")
    port = free_port()
    pgpass = cluster.folder / "pgpass"
    pgpass.write_text(f"127.0.0.1:{port}:*:{DB_USER}:{DB_PASSWORD}\n")
    pgpass.chmod(0o600)
    cluster.env["PGPASSFILE"] = str(pgpass)
    psql = _tool("psql")

    def answers() -> bool:
        return cluster.run(psql, "-h", "127.0.0.1", "-p", str(port), "-U", DB_USER, "-d", "postgres", "-Atc",
                           "select 1", check=False, timeout=20).stdout.strip() == "1"

    cluster.start("postgres", [postgres, "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                               "-k", str(sockets), "-c", "fsync=off", "-c", "max_connections=100"],
                  log, user=run_as, ready=answers)
    cluster.run(psql, "-h", "127.0.0.1", "-p", str(port), "-U", DB_USER, "-d", "postgres", "-c",
                f"CREATE DATABASE {DB_NAME}")
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"


def _switch_to(entry):
    """A preexec_fn that drops to `entry`'s uid and gid."""
    def switch():
        os.setgid(entry.pw_gid)
        os.setgroups([])
        os.setuid(entry.pw_uid)
    return switch


@contextlib.contextmanager
def _as(entry):
    """Create files as `entry` (root only; None: as we are)."""
    if entry is None:
        yield
        return
    os.setegid(entry.pw_gid)
    os.seteuid(entry.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def create_database(cluster: Cluster, name: str) -> str:
    """Another empty database on the same server; returns its URL."""
    base, _ = cluster.db_url.rsplit("/", 1)
    host_port = base.rsplit("@", 1)[1]
    host, port = host_port.split(":")
    cluster.run(_tool("psql"), "-h", host, "-p", port, "-U", DB_USER, "-d", "postgres", "-c",
                f"CREATE DATABASE {name}")
    return f"{base}/{name}"


@contextlib.contextmanager
def running(folder: Path, *, slurm: bool = True, postgres: bool = True, cpus: int | None = None) -> Iterator[Cluster]:
    """munged + slurmctld + slurmd and/or PostgreSQL in `folder`; every process started here is stopped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(Path(folder))
    try:
        if slurm:
            start_slurm(cluster, start_munge(cluster), cpus=cpus)
        if postgres:
            cluster.db_url = start_postgres(cluster)
        yield cluster
    finally:
        cluster.stop()
