#!/usr/bin/env bash
# Start a single-node Slurm on this machine, for `python -m pytest -m slurm` (issue 15).
#
# Debian/Ubuntu, run as root, no systemd needed: installs slurm-wlm and munge (apt), writes a
# one-node slurm.conf (every CPU of this machine, one partition "debug"), creates a munge key
# if there is none, and starts munged, slurmctld and slurmd as plain daemons. Idempotent: a
# second run restarts the daemons with a fresh config. Stop everything with
# `scripts/slurm_single_node.sh stop`. No accounting database (slurmdbd): `sacct` does not
# work, which theorysim's Slurm executor does not need (it follows jobs with squeue and the
# result store).
set -euo pipefail

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm

stop() {
    for daemon in slurmd slurmctld; do
        if pid=$(pgrep -x "$daemon"); then kill $pid || true; fi
    done
    sleep 1
}

if [[ "${1:-}" == "stop" ]]; then
    stop
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "run as root (it installs packages and starts system daemons)" >&2
    exit 1
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurm-wlm munge
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd /run/munge

cat > "$CONF_DIR/slurm.conf" <<CONF
# written by theorysim scripts/slurm_single_node.sh
ClusterName=theorysim
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
MaxArraySize=10001
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
# no cgroup.conf: Slurm 22.05 has no "CgroupPlugin=disabled" and autodetects the cgroup
# version (proctrack/linuxproc and task/none do not confine jobs with cgroups anyway)

if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge 2>/dev/null || true
chmod 0700 /etc/munge
chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged
fi
munge -n | unmunge >/dev/null

stop
slurmctld
slurmd
for _ in $(seq 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
        sinfo
        echo "single-node Slurm is up: $cpus CPUs on $host, partition debug"
        exit 0
    fi
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sleep 1
done
echo "Slurm did not come up; see $LOG_DIR/slurmctld.log and $LOG_DIR/slurmd.log" >&2
sinfo >&2 || true
exit 1
