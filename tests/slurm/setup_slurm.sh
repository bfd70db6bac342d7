#!/usr/bin/env bash
# A throwaway one-node SLURM cluster for tests/test_slurm.py: installs SLURM and munge (Debian
# packages, once) and writes the cluster's config. The test itself starts the daemons and stops
# them by pid. Idempotent; needs root.
#
#   tests/slurm/setup_slurm.sh STATE_DIR
#
# The node is this machine (as "localhost"), declared with 8 CPUs whatever it has (the test's jobs
# mostly wait, and a 2-core CI machine could otherwise run only two at once), most of its memory
# and four fake GPUs (GRES backed by /dev/null, /dev/zero, /dev/full and /dev/urandom: SLURM
# hands them out, accounts for them and sets CUDA_VISIBLE_DEVICES; nothing uses them). No
# accounting database: job states come from squeue (MinJobAge keeps finished jobs there for 60
# minutes). A job past its time limit is killed 5 s after its SIGTERM (KillWait), so the
# time-out test need not wait long. Spool, state and logs go to STATE_DIR.
#
# The config must be at SLURM's compiled-in path (/etc/slurm/slurm.conf): the jobstep plugin runs
# its nested srun with every SLURM_* variable removed, so SLURM_CONF would not reach it. A
# slurm.conf that this script did not write is never touched (exit status 3).
set -euo pipefail

state_dir=${1:?usage: setup_slurm.sh STATE_DIR}
marker="# minima throwaway test cluster (written by tests/slurm/setup_slurm.sh)"
conf_dir=/etc/slurm

if [[ $(id -u) -ne 0 ]]; then
    echo "setup_slurm.sh: needs root (installs packages, writes $conf_dir)" >&2
    exit 2
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    if ! command -v apt-get >/dev/null; then
        echo "setup_slurm.sh: SLURM is not installed and there is no apt-get" >&2
        exit 2
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null \
        || { apt-get update -q >/dev/null \
             && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null; }
fi

if [[ -e $conf_dir/slurm.conf ]] && ! grep -qxF "$marker" "$conf_dir/slurm.conf"; then
    echo "setup_slurm.sh: $conf_dir/slurm.conf exists and is not ours; not touching it" >&2
    exit 3
fi

if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown -R munge:munge /etc/munge
chmod 700 /etc/munge
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge

mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p "$state_dir/ctld" "$state_dir/slurmd" "$conf_dir"

cat >"$conf_dir/slurm.conf" <<CONF
$marker
ClusterName=minima-test
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state_dir/ctld
SlurmdSpoolDir=$state_dir/slurmd
SlurmctldPidFile=$state_dir/slurmctld.pid
SlurmdPidFile=$state_dir/slurmd.pid
SlurmctldLogFile=$state_dir/slurmctld.log
SlurmdLogFile=$state_dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MinJobAge=3600
KillWait=5
OverTimeLimit=0
EnforcePartLimits=ALL
SlurmdParameters=config_overrides
SchedulerParameters=sched_interval=2
MessageTimeout=20
DefMemPerCPU=500
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=$mem_mb Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=UNLIMITED State=UP
CONF

cat >"$conf_dir/gres.conf" <<CONF
$marker
AutoDetect=off
NodeName=localhost Name=gpu File=/dev/null
NodeName=localhost Name=gpu File=/dev/zero
NodeName=localhost Name=gpu File=/dev/full
NodeName=localhost Name=gpu File=/dev/urandom
CONF

echo "$conf_dir/slurm.conf"
