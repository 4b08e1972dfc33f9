#!/usr/bin/env bash
# A one-node Slurm cluster for dfew's tests and benchmarks, from Debian's
# packages (slurm-wlm 22.05, munge): a private munged, slurmctld and slurmd
# with every file (config, key, state, spool, logs, pids) in one folder and
# ports of their own, so nothing of a system Slurm is touched. Root only (no
# cgroups, no systemd). Not a production setup; see docs/slurm.md for that.
#
#   tests/slurm/cluster.sh start DIR   # prints SLURM_CONF=DIR/slurm.conf
#   tests/slurm/cluster.sh stop DIR
#
# Exit status of start: 0 running; 77 cannot run here (not root, packages
# missing), with the reason on stderr; 1 a daemon did not come up (its log
# tail on stderr). Clients need SLURM_CONF=DIR/slurm.conf in their
# environment. Options (environment): DFEW_SLURM_CPUS (CPUs the node
# offers, default: nproc), DFEW_SLURM_GPUS (gpu generic resources the node
# offers, default 5: Slurm's bookkeeping only, no device files, so that
# train jobs' --gres=gpu:1 is scheduled as on a GPU node),
# DFEW_SLURM_MIN_JOB_AGE (seconds Slurm keeps an ended job, default 300).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi

pids() { for f in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do [ -s "$f" ] && cat "$f"; done; true; }

stop() {
  [ -d "$dir" ] || return 0
  # Our own daemons only: the pids their pid files name, and only while
  # that process still runs the program we started.
  local name pid f
  for name in slurmd slurmctld munged; do
    f=$dir/$name.pid
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if [ -r /proc/$pid/comm ] && [ "$(cat /proc/$pid/comm)" = "$name" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do [ -e /proc/$pid ] || break; sleep 0.1; done
      [ -e /proc/$pid ] && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
  # Job steps slurmd started (slurmstepd, and what they run) die with their
  # job; a slurmstepd left by a killed slurmd is ours if it runs from our spool.
  for pid in $(pgrep -x slurmstepd || true); do
    if grep -qs -- "$dir" /proc/$pid/cmdline /proc/$pid/environ 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

if [ "$cmd" = stop ]; then
  stop
  exit 0
fi
if [ "$cmd" != start ]; then
  echo "$0: unknown command '$cmd' (start or stop)" >&2
  exit 2
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "a test Slurm cluster needs root (slurmd runs jobs as their user); run as root" >&2
  exit 77
fi
for p in munged slurmctld slurmd sbatch squeue scontrol scancel; do
  if ! command -v "$p" >/dev/null && [ ! -x /usr/sbin/$p ]; then
    echo "$p is missing: install Debian's slurm-wlm and munge (scripts/setup-deps.sh)" >&2
    exit 77
  fi
done
PATH=$PATH:/usr/sbin

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
stop
mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 0700 "$dir/munge"

# a free TCP port, and one after it, for slurmctld and slurmd
read -r ctld_port slurmd_port < <(python3 -c '
import socket
ps = []
while len(ps) < 2:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    if p not in ps: ps.append(p)
print(*ps)')

host=$(hostname -s)
cpus=${DFEW_SLURM_CPUS:-$(nproc)}
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
# fake GPUs: Slurm counts a gpu per device file it is given; character
# devices every machine has stand in (jobs get CUDA_VISIBLE_DEVICES, no GPU)
fake=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom)
gpus=${DFEW_SLURM_GPUS:-5}
[ "$gpus" -le ${#fake[@]} ] || gpus=${#fake[@]}
gpu_files=$(IFS=,; echo "${fake[*]:0:$gpus}")

dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 0400 "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
  --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed" 2>>"$dir/munged.log" || {
  echo "munged did not start:" >&2; tail -5 "$dir/munged.log" >&2; exit 1; }

cat > "$dir/slurm.conf" <<CONF
# a one-node test cluster written by tests/slurm/cluster.sh
ClusterName=dfewtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=1
MinJobAge=${DFEW_SLURM_MIN_JOB_AGE:-300}
KillWait=5
InactiveLimit=0
SlurmdTimeout=30
MpiDefault=none
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:$gpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF

echo "NodeName=$host Name=gpu File=$gpu_files" > "$dir/gres.conf"

export SLURM_CONF=$dir/slurm.conf
slurmctld -f "$SLURM_CONF" -i 2>>"$dir/slurmctld.log" || {
  echo "slurmctld did not start:" >&2; tail -20 "$dir/slurmctld.log" >&2; stop; exit 1; }
slurmd -f "$SLURM_CONF" 2>>"$dir/slurmd.log" || {
  echo "slurmd did not start:" >&2; tail -20 "$dir/slurmd.log" >&2; stop; exit 1; }

# up when the node is idle
for _ in $(seq 150); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
  case "$state" in idle*|mixed*|allocated*) echo "SLURM_CONF=$SLURM_CONF"; exit 0 ;; esac
  sleep 0.1
done
echo "the node $host did not come up (state '${state:-?}'); slurmctld and slurmd logs:" >&2
tail -10 "$dir/slurmctld.log" >&2
tail -10 "$dir/slurmd.log" >&2
stop
exit 1
