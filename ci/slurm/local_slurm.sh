#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for testing profiles/slurm (tests/test_slurm_integration.py).
#
#   ci/slurm/local_slurm.sh up       install (if missing), write the config, start the daemons, smoke-test them
#   ci/slurm/local_slurm.sh down     stop the daemons this script started (by the pids in its state directory)
#   ci/slurm/local_slurm.sh status   which daemons run, and sinfo; exit 0 only when the node is usable
#
# Needs root and apt (Debian 12 / Slurm 22.05: munge, slurmctld, slurmd, slurm-client, slurmdbd, mariadb-server);
# no systemd. The node gets every CPU of this machine, 85 % of its memory, and one fake GPU (GRES gpu:1 backed by
# /dev/null, so `--gpus=1` is scheduled and accounted like a real GPU, one job at a time). Two partitions, both
# holding the node: `cpu` (default) and `gpu` -- the names profiles/slurm uses. slurmdbd + MariaDB make `sacct`
# answer (the plugin's default status command) and record each job's GPU request (AllocTRES) and comment (the
# rule name), which the integration test reads. ci/slurm/hold_job.sh, run inside jobs, makes one rule's job outlast a
# 1-minute limit for the test's TIMEOUT-and-retry check.
#
# Env: LATENTEDIT_SLURM_STATE (default /var/tmp/latentedit-slurm): pidfiles, logs, spool; wiped on every `up`.
set -euo pipefail

STATE="${LATENTEDIT_SLURM_STATE:-/var/tmp/latentedit-slurm}"
NODE="$(hostname -s)"
CLUSTER=latentedit
DBPASS=latentedit-slurm   # local-only MariaDB account, bound to 127.0.0.1
PACKAGES="munge slurmctld slurmd slurm-client slurmdbd mariadb-server"

log() { echo "[local_slurm $(date +%T)] $*" >&2; }

fail() {  # fail <message>: say why, show the daemons' last log lines, exit non-zero
  log "ERROR: could not bring Slurm up: $*"
  for f in "$STATE"/log/*.log; do
    [ -s "$f" ] && { echo "--- tail $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}

wait_for() {  # wait_for <seconds> <cmd...>: poll until cmd succeeds
  local end=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && return 1
    sleep 0.5
  done
}

install_packages() {
  local missing="" p
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  command -v apt-get >/dev/null || fail "packages missing ($missing) and no apt-get"
  log "apt-get install$missing"
  apt-get update -qq || fail "apt-get update failed"
  # In containers policy-rc.d keeps postinst from starting the services: we start them ourselves below.
  # shellcheck disable=SC2086 # $missing is a list of package names
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || fail "apt-get install$missing failed"
}

write_config() {
  local mem ncpu
  ncpu=$(nproc)
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$((mem * 85 / 100)) # headroom: a node reporting less memory than configured is drained
  mkdir -p /etc/slurm "$STATE"/spool/ctld "$STATE"/spool/d "$STATE"/log
  cat >/etc/slurm/slurm.conf <<CONF
# written by ci/slurm/local_slurm.sh
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups in a container: track processes by parent pid, do not confine tasks
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SchedulerType=sched/backfill
# A CPU job waiting behind queued GPU jobs starts only by backfill: look every 5 s instead of 30 s.
SchedulerParameters=bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without a default, a job that gives no --mem takes the whole node and jobs never share it
DefMemPerCPU=1000
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
# store --comment (the plugin puts the rule name there) so sacct can show it
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
# finished jobs stay visible to squeue for 5 min (for profiles that poll with squeue instead of sacct)
MinJobAge=300
# The retry test (ci/slurm/hold_job.sh) counts on a job being killed at its limit without grace: Slurm's default,
# stated because the test's timing assumes it (slurmctld checks limits every 30 s: a 1-min job dies 60-90 s in).
OverTimeLimit=0
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$NODE MaxTime=INFINITE State=UP
CONF
  # Slurm drops a GPU without a device file ("Removing file-less GPU") and drains the node: back it by /dev/null.
  cat >/etc/slurm/gres.conf <<CONF
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
CONF
  cat >/etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DBPASS
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged || fail "munged did not start"
    wait_for 10 sh -c 'munge -n | unmunge' || fail "munged does not answer"
    cp /run/munge/munged.pid "$STATE/munged.pid"
  fi
}

start_database() {
  # mariadbd runs as user mysql, so its pidfile must be in a directory mysql owns; copied for `down`
  mkdir -p /run/mysqld && chown mysql:root /run/mysqld
  if ! mariadb -e 'select 1' >/dev/null 2>&1; then
    setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --pid-file=/run/mysqld/mysqld.pid \
      >"$STATE/log/mariadbd.log" 2>&1 </dev/null &
    wait_for 60 mariadb -e 'select 1' || fail "MariaDB did not start"
    cp /run/mysqld/mysqld.pid "$STATE/mariadbd.pid"
  fi
  # A fresh accounting database on every bring-up: job ids restart at 1 with the wiped spool.
  mariadb -e "DROP DATABASE IF EXISTS slurm_acct_db; CREATE DATABASE slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;" || fail "cannot create the accounting DB"
  /usr/sbin/slurmdbd || fail "slurmdbd did not start"
  wait_for 30 sacctmgr -n list cluster || fail "slurmdbd does not answer"
  sacctmgr -i add cluster "$CLUSTER" >/dev/null || fail "sacctmgr add cluster failed"
}

node_idle() { sinfo -h -n "$NODE" -p cpu -o %T 2>/dev/null | grep -qx idle; }

up() {
  if [ "$(id -u)" != 0 ]; then
    log "ERROR: could not bring Slurm up: needs root (it installs packages and starts system daemons)"
    exit 1
  fi
  local t0 t1 t2 t3 out
  t0=$(date +%s)
  install_packages
  t1=$(date +%s)
  down quiet
  rm -rf "$STATE" # no stale job or node state (a drain reason survives restarts in the spool)
  write_config
  start_munge
  start_database
  /usr/sbin/slurmctld || fail "slurmctld did not start"
  /usr/sbin/slurmd || fail "slurmd did not start"
  wait_for 30 node_idle || fail "node $NODE is not idle: $(sinfo -h -N -o '%N %T %E' 2>&1)"
  t2=$(date +%s)
  # smoke test: a batch job asking for the fake GPU, then its accounting record
  out="$STATE/smoke.out"
  # shellcheck disable=SC2016 # expanded in the job, not here
  sbatch --wait -p gpu -t 1 --gpus=1 -o "$out" --wrap 'echo gpu=$CUDA_VISIBLE_DEVICES' >/dev/null \
    || fail "smoke job failed: $(cat "$out" 2>/dev/null)"
  grep -q 'gpu=0' "$out" || fail "smoke job did not see the GPU: $(cat "$out")"
  wait_for 30 sh -c "sacct -X -n -o AllocTRES%60,State | grep 'gres/gpu=1' | grep -q COMPLETED" \
    || fail "sacct does not show the smoke job's GPU: $(sacct -X -o JobID,AllocTRES%60,State 2>&1)"
  t3=$(date +%s)
  log "up: $(sinfo -h -o '%P %a %T %N %G' | tr '\n' ';')"
  log "install $((t1 - t0)) s, daemons $((t2 - t1)) s, smoke test $((t3 - t2)) s"
}

stop_pidfile() { # SIGTERM the pid in the file, wait up to 20 s, then SIGKILL
  local f="$1" pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$f"
}

down() {
  local d
  for d in slurmd slurmctld slurmdbd mariadbd munged; do
    [ "${1:-}" = quiet ] || [ ! -s "$STATE/$d.pid" ] || log "stopping $d (pid $(cat "$STATE/$d.pid"))"
    stop_pidfile "$STATE/$d.pid"
  done
}

status() {
  local d
  for d in munged mariadbd slurmdbd slurmctld slurmd; do
    if [ -s "$STATE/$d.pid" ] && kill -0 "$(cat "$STATE/$d.pid")" 2>/dev/null; then
      echo "$d running (pid $(cat "$STATE/$d.pid"))"
    else
      echo "$d not running"
    fi
  done
  sinfo 2>/dev/null || true
  node_idle || sinfo -h -n "$NODE" -o %T 2>/dev/null | grep -Eqx 'idle|mixed|allocated'
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *)
    echo "usage: $0 up|down|status" >&2
    exit 2
    ;;
esac
