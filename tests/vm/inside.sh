#!/bin/sh
# Runs inside the VM (see run.py), as root in the root cgroup: PYTHON -m pytest -m vm tests/vm ARGS...
# then, with BENCH=1, bench/bench_limits.py. Exits with pytest's status.
python="$1"
shift
export FLYTE_DECL_IN_VM=1 HOME=/tmp/vm-home PYTHONDONTWRITEBYTECODE=1
mkdir -p "$HOME"
# The unprivileged runner needs to reach the interpreter: where it lives under root's private home
# (pyenv's default), show that home as a world-traversable tmpfs holding just the interpreters.
real="$(readlink -f "$python")"
case "$real" in
/root/*)
    keep="$(echo "$real" | cut -d/ -f1-3)"   # /root/.pyenv
    mkdir -p /run/vm-keep && mount --bind "$keep" /run/vm-keep
    mount -t tmpfs -o mode=755 vm-root /root
    mkdir -p "$keep" && mount --bind /run/vm-keep "$keep"
    ;;
esac
"$python" -m pytest -p no:cacheprovider -m vm tests/vm -q -rs "$@"
status=$?
if [ "${BENCH:-0}" = 1 ]; then
    "$python" bench/bench_limits.py --polls 200
fi
exit $status
