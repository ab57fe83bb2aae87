"""Run the cgroup v2 tests (``-m vm``) inside a virtual machine booted on this machine's own kernel package.

The machine itself may mount cgroup v1 (as CI does); the VM boots Debian's kernel over the host's
root filesystem (read-only, through 9p) with the unified hierarchy and every controller, runs
``tests/vm`` once as root, and exits with pytest's status. Needs the Debian packages
``qemu-system-x86``, ``linux-image-amd64`` and ``busybox-static`` and virtme-ng (``pip install
-e '.[vm]'``). KVM guests hang on these machines, so it emulates (TCG): about 35 s to boot and Python
about 30x slower than on the host, hence a handful of tests, in one VM session.

Usage: ``python tests/vm/run.py [--bench] [PYTEST ARGS...]``; ``--bench`` also runs
``bench/bench_limits.py`` in the same VM, for its cgroup v2 row.
"""

from __future__ import annotations

import compileall
import contextlib
import glob
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 1800  # seconds for the whole VM session: about 5 minutes on a quiet 2-core machine


def kernel() -> str:
    """The newest installed Debian kernel image."""
    images = sorted(glob.glob("/boot/vmlinuz-*"))
    if not images:
        sys.exit("no kernel in /boot: apt-get install linux-image-amd64")
    return images[-1]


def vng() -> str:
    """virtme-ng's `vng`, from PATH or beside this interpreter (it calls `virtme-run` by name)."""
    beside = Path(sys.executable).parent / "vng"
    found = shutil.which("vng") or (str(beside) if beside.exists() else None)
    if found is None:
        sys.exit("virtme-ng is not installed: pip install -e '.[vm]'")
    return found


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # run `finally`: the VM is in a session of its own


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)  # `timeout` in .ci/run stops the harness, and with it the VM
    bench = "--bench" in argv
    pytest_args = [arg for arg in argv if arg != "--bench"]
    # The VM sees the source read-only: compile it here, or every process in the VM compiles it again.
    compileall.compile_dir(REPO / "flyte_decl", quiet=1)
    compileall.compile_dir(REPO / "bench", quiet=1)
    inside = shlex.join(["sh", "tests/vm/inside.sh", sys.executable, *pytest_args])
    if bench:
        inside = "BENCH=1 " + inside
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    command = [
        vng(), "--disable-kvm", "-r", kernel(), "--memory", "2G", "--cpus", "2",
        "--exec", f"cd {shlex.quote(str(REPO))} && {inside}",
    ]  # fmt: skip
    print("+", shlex.join(command), flush=True)
    began = time.monotonic()
    vm = subprocess.Popen(command, env={**os.environ, "PATH": path}, start_new_session=True)
    try:
        status = vm.wait(timeout=BOOT_TIMEOUT)
        print(f"the VM session took {time.monotonic() - began:.0f} s (exit {status})", flush=True)
        return status
    except subprocess.TimeoutExpired:
        print(f"the VM did not finish within {BOOT_TIMEOUT} s", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(vm.pid, signal.SIGKILL)  # vng, virtme-run and qemu: nothing outlives the harness
        vm.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
