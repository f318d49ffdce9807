"""Helpers of the HPC tests (SLURM, concurrency, kill/resume): small datasets cut from the
demo, a fast configuration, the environment of inflamap subprocesses, and a single-node
SLURM cluster on localhost run from Debian's packages (slurm-wlm, munge)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, TF_HOME

# The demo's template and atlas with short registrations: these tests check scheduling,
# concurrency and resumption, not accuracy (tests/test_anat_e2e.py does).
FAST_CONFIG = """\
anat:
  template: MNI152NLin2009aSym
  template_resolution: 2
  atlas: inflamapLobes
  n4:
    iterations: [20, 20]
  registration:
    rigid_iterations: [100, 0, 0]
    affine_iterations: [100, 0, 0]
    syn_iterations: [5, 0, 0]
"""


def write_fast_config(folder: Path) -> Path:
    path = Path(folder) / "fast.yml"
    path.write_text(FAST_CONFIG)
    return path


def cli_env(**extra) -> dict:
    """Environment of inflamap subprocesses: this checkout first on the path (not an older
    installed copy), the tests' offline TemplateFlow home."""
    env = dict(os.environ, TEMPLATEFLOW_HOME=str(TF_HOME))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _keep(name: str) -> bool:
    """Pre-contrast T1w files only (the anatomical workflow and its regional table)."""
    return not re.search(r"MEGRE|VFA|_dce|_ce-|_pet|_spect", name)


def t1w_subset(
    demo_dir: Path, dest: Path, sessions=("01",), participants: int | None = None
) -> Path:
    """A valid BIDS dataset with the demo's pre-contrast T1w of ``sessions``.

    With ``participants=N``, participants sub-01..sub-N are copies of the demo's (cycling
    through them, renamed), so that many participants cost no extra demo generation.
    """
    src = Path(demo_dir) / "bids"
    dest = Path(dest)
    dest.mkdir(parents=True)
    for name in ("dataset_description.json", "README.md", "participants.json", ".bidsignore"):
        if (src / name).exists():
            shutil.copy(src / name, dest / name)
    rows = (src / "participants.tsv").read_text().splitlines()
    header, demo_rows = rows[0], rows[1:]
    demo_ids = [r.split("\t")[0][4:] for r in demo_rows]
    n = participants or len(demo_ids)
    out_rows = [header]
    for i in range(n):
        old = demo_ids[i % len(demo_ids)]
        new = f"{i + 1:02d}"
        out_rows.append("\t".join([f"sub-{new}", *demo_rows[i % len(demo_rows)].split("\t")[1:]]))
        for f in sorted((src / f"sub-{old}").rglob("*")):
            rel = f.relative_to(src / f"sub-{old}")
            if f.is_dir() or not _keep(f.name):
                continue
            if rel.parts[0].startswith("ses-") and rel.parts[0][4:] not in sessions:
                continue
            target = (
                dest
                / f"sub-{new}"
                / Path(*[p.replace(f"sub-{old}", f"sub-{new}") for p in rel.parts])
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.name.endswith("_sessions.tsv"):
                lines = f.read_text().splitlines()
                keep = [lines[0]] + [ln for ln in lines[1:] if ln.split("\t")[0][4:] in sessions]
                target.write_text("\n".join(keep) + "\n")
            else:
                shutil.copy(f, target)
    (dest / "participants.tsv").write_text("\n".join(out_rows) + "\n")
    return dest


def slurm_missing() -> str | None:
    """Why a local SLURM cannot start here (None when it can)."""
    tools = (
        "slurmctld",
        "slurmd",
        "munged",
        "mungekey",
        "sbatch",
        "squeue",
        "scontrol",
        "scancel",
    )
    missing = [t for t in tools if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        return (
            f"SLURM/munge not installed ({', '.join(missing)} missing): "
            "run .ci/slurm-setup.sh (apt-get install slurm-wlm munge)"
        )
    if os.geteuid() != 0:
        return "the single-node SLURM of the tests runs its daemons as root"
    return None


def _exe(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalSlurm:
    """slurmctld + slurmd + munged on localhost, all files in ``root``.

    Root daemons, munge authentication on a private socket, ``proctrack/linuxproc``,
    ``task/none``, no accounting (no slurmdbd: sacct has nothing; finished jobs are read
    with ``scontrol show job`` for ``MinJobAge`` seconds), one node with this machine's CPUs
    and memory, free TCP ports so that it never meets another SLURM.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        self.procs: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.node = socket.gethostname().split(".")[0]
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))

    def start(self, timeout=60):
        r = self.root
        r.mkdir(parents=True, exist_ok=True)
        r.chmod(0o700)
        for d in ("state", "spool"):
            (r / d).mkdir(exist_ok=True)
        subprocess.run(
            [_exe("mungekey"), "-c", "-f", "-k", str(r / "munge.key"), "-b", "1024"],
            check=True,
            capture_output=True,
        )
        self.socket = r / "munge.socket"
        self._spawn(
            "munged",
            [
                _exe("munged"),
                "-F",
                "-f",
                f"--socket={self.socket}",
                f"--key-file={r / 'munge.key'}",
                f"--log-file={r / 'munged.log'}",
                f"--pid-file={r / 'munged.pid'}",
                f"--seed-file={r / 'munged.seed'}",
            ],
        )
        self._wait(lambda: self.socket.exists(), timeout, "munged did not create its socket")
        mem_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
        self.conf.write_text(f"""\
ClusterName=inflamaptest
SlurmctldHost={self.node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "slurmctld.log"}
SlurmdLogFile={r / "slurmd.log"}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
KillWait=5
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} \
RealMemory={max(512, mem_mb - 1024)} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        self._spawn("slurmctld", [_exe("slurmctld"), "-D", "-f", str(self.conf)])
        self._wait(
            lambda: self._ok(["scontrol", "ping"], "UP"), timeout, "slurmctld did not answer"
        )
        self._spawn("slurmd", [_exe("slurmd"), "-D", "-f", str(self.conf)])
        self._wait(
            lambda: self._ok(["sinfo", "-h", "-o", "%T"], "idle"),
            timeout,
            "the node did not become idle",
        )
        return self

    def _spawn(self, name, argv):
        log = open(self.root / f"{name}.out", "w")
        self.procs.append(
            subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        )
        log.close()

    def _ok(self, argv, word) -> bool:
        p = subprocess.run(argv, capture_output=True, text=True, env=self.env)
        return p.returncode == 0 and word in p.stdout

    def _wait(self, cond, timeout, what):
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(
                        f"{what}: {p.args[0]} exited ({p.returncode}); {self.logs()}"
                    )
            time.sleep(0.5)
        raise RuntimeError(f"{what} within {timeout} s; {self.logs()}")

    def logs(self) -> str:
        out = []
        for f in sorted(self.root.glob("*.out")) + sorted(self.root.glob("*.log")):
            out.append(f"--- {f.name}\n" + "\n".join(f.read_text().splitlines()[-15:]))
        return "\n".join(out)

    def run(self, argv, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("env", self.env)
        return subprocess.run(argv, capture_output=True, text=True, **kw)

    def queue(self) -> list[str]:
        """Job ids still pending or running."""
        p = self.run(["squeue", "-h", "-o", "%i"])
        return p.stdout.split()

    def job(self, jobid="") -> list[dict]:
        """``scontrol show job`` fields of a job (every task of an array; every job for "")."""
        p = self.run(["scontrol", "-o", "show", "job", *([str(jobid)] if jobid else [])])
        jobs = []
        for line in p.stdout.splitlines():
            jobs.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
        return jobs

    def wait_idle(self, timeout) -> bool:
        end = time.time() + timeout
        while time.time() < end:
            if not self.queue():
                return True
            time.sleep(2)
        return False

    def stop(self):
        """Cancel every job of this private cluster, then stop the daemons started here."""
        try:
            ids = self.queue()
            if ids:
                self.run(["scancel", *ids])
                self.wait_idle(30)
        finally:
            for p in reversed(self.procs):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait(5)
            self.procs.clear()


def python_cmd() -> str:
    """The command that runs this checkout's inflamap with this interpreter."""
    return f"{sys.executable} -m pipeline"
