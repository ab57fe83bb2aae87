#!/bin/sh
# Runs inside the VM (see run.py), as root in the root cgroup: PYTHON -m pytest -m vm tests/vm ARGS...
# then, with BENCH=1, bench/bench_limits.py. Exits with pytest's status.
python="$1"
shift
export FLYTE_DECL_IN_VM=1 HOME=/tmp/vm-home PYTHONDONTWRITEBYTECODE=1
mkdir -p "$HOME"
# The unprivileged runner needs to reach the interpreter and the source: what of them lives under
# root's private home (pyenv's default), show there on a world-traversable tmpfs, and nothing else.
keep=""
for path in "$(readlink -f "$python")" "$PWD"; do
    case "$path" in
    /root/*) keep="$keep $(echo "$path" | cut -d/ -f1-3)" ;;
    esac
done
if [ -n "$keep" ]; then
    mkdir -p /run/vm-keep
    for dir in $keep; do
        [ -d "/run/vm-keep$dir" ] || { mkdir -p "/run/vm-keep$dir" && mount --bind "$dir" "/run/vm-keep$dir"; }
    done
    mount -t tmpfs -o mode=755 vm-root /root
    for dir in $keep; do
        [ -d "$dir" ] || { mkdir -p "$dir" && mount --bind "/run/vm-keep$dir" "$dir"; }
    done
    cd "$PWD" || exit 1
fi
"$python" -m pytest -p no:cacheprovider -m vm tests/vm -v -rs --durations=0 "$@"
status=$?
if [ "${BENCH:-0}" = 1 ]; then
    "$python" bench/bench_limits.py --polls 200
fi
exit $status
