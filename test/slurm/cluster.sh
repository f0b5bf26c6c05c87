#!/usr/bin/env bash
# A throw-away Slurm cluster on this machine, for themis's end-to-end tests and CI.
#
#   bash test/slurm/cluster.sh start PREFIX [OPTIONS]  # install if missing, configure, start, wait until idle
#   bash test/slurm/cluster.sh status PREFIX  # exit 0 when the controller answers and nodes are up
#   bash test/slurm/cluster.sh stop PREFIX    # cancel jobs, shut down, kill leftovers by pid/marker
#
# Options of `start` (defaults: the 2-node cluster of the e2e suite):
#   --nodes N       emulated nodes n[1-N] (default 2)
#   --cpus N        CPUs per node (default 4)
#   --gpus N        fake GPUs per node (default 2)
#   --max-steps N   MaxStepCount: job steps one job may create (default: Slurm's, 40,000)
#   --mpi           MpiDefault=pmix with Debian's OpenMPI (openmpi-bin libopenmpi-dev libpmix-dev,
#                   installed if missing, before any slurmd starts: Slurm's pmix plugin dlopens
#                   libpmix.so) and a TmpFS per node (pmix's per-step directories collide otherwise)
# The many-node suite's cluster:  cluster.sh start /tmp/slurm4 --nodes 4 --max-steps 25 --mpi
# Two clusters with different prefixes run side by side (own ports, state, daemons).
#
# Emulated nodes of CPUS CPUs with GPUS fake GPUs each (char devices cloned from /dev/null),
# auth/none + cred/none on loopback, all state, spool, logs and pid files under PREFIX.
# Every daemon carries THEMIS_SLURM_MARKER=<PREFIX> in its environment so `stop` can find what is
# left (a slurmstepd may outlive its slurmd) without matching processes by name.
# Clients use it through PREFIX/env.sh (SLURM_CONF, THEMIS_SLURM_PREFIX).
set -euo pipefail

NODE_COUNT=2
CPUS=4
GPUS=2
MAX_STEPS=
MPI=0
KILL_WAIT=10
IDLE_TIMEOUT=${THEMIS_SLURM_IDLE_TIMEOUT:-60}

die() { echo "cluster.sh: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

usage() { die "usage: cluster.sh start PREFIX [--nodes N] [--cpus N] [--gpus N] [--max-steps N] [--mpi] | stop PREFIX | status PREFIX"; }

[[ $# -ge 2 ]] || usage
CMD=$1
PREFIX=$2
shift 2
count() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 wants a positive number, got '$2'"; echo "$2"; }
while [[ $# -gt 0 ]]; do
  [[ $CMD == start ]] || usage
  case $1 in
    --nodes) [[ $# -ge 2 ]] || usage; NODE_COUNT=$(count "$1" "$2"); shift 2 ;;
    --cpus) [[ $# -ge 2 ]] || usage; CPUS=$(count "$1" "$2"); shift 2 ;;
    --gpus) [[ $# -ge 2 ]] || usage; GPUS=$(count "$1" "$2"); shift 2 ;;
    --max-steps) [[ $# -ge 2 ]] || usage; MAX_STEPS=$(count "$1" "$2"); shift 2 ;;
    --mpi) MPI=1; shift ;;
    *) usage ;;
  esac
done
NODES=()
for ((i = 1; i <= NODE_COUNT; i++)); do NODES+=("n$i"); done
mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd -P)
CONF=$PREFIX/etc/slurm.conf
MARKER=$PREFIX
export SLURM_CONF=$CONF

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (slurmd needs it)"; }

install_packages() {
  local missing=()
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  # munge is installed as the packages expect it, but this cluster uses auth/none.
  command -v munged >/dev/null || missing+=(munge)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The package scripts try to start the services; there is no init here, so they fail harmlessly.
  apt-get update -qq >"$PREFIX/apt.log" 2>&1 || { cat "$PREFIX/apt.log" >&2; die "apt-get update failed"; }
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >>"$PREFIX/apt.log" 2>&1 ||
    { tail -40 "$PREFIX/apt.log" >&2; die "apt-get install failed"; }
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null ||
    die "slurm binaries still missing after install (see $PREFIX/apt.log)"
}

# Slurm's pmix plugin dlopens the unversioned libpmix.so (libpmix-dev): without it every MPI step
# times out. Debian's OpenMPI starts under srun only through PMIx.
pmix_present() { compgen -G '/usr/lib/*/libpmix.so' >/dev/null || compgen -G '/usr/lib/libpmix.so' >/dev/null; }

install_mpi() {
  command -v mpicc >/dev/null && pmix_present && return 0
  log "installing openmpi-bin libopenmpi-dev libpmix-dev (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$PREFIX/apt-mpi.log" 2>&1 || { cat "$PREFIX/apt-mpi.log" >&2; die "apt-get update failed"; }
  apt-get install -y -qq --no-install-recommends openmpi-bin libopenmpi-dev libpmix-dev >>"$PREFIX/apt-mpi.log" 2>&1 ||
    { tail -40 "$PREFIX/apt-mpi.log" >&2; die "apt-get install of OpenMPI failed"; }
  command -v mpicc >/dev/null && pmix_present || die "mpicc or libpmix.so still missing after install (see $PREFIX/apt-mpi.log)"
}

# Is TCP port $1 in use (listening or connected) on this machine? Reads /proc, forks nothing.
port_in_use() {
  local hex
  hex=$(printf ':%04X ' "$1")
  grep -qi "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A base port derived from PREFIX (so two clusters with different prefixes rarely collide),
# moved on until the controller port and one port per node are all free.
pick_ports() {
  local sum base i ok
  sum=$(printf '%s' "$PREFIX" | cksum | cut -d' ' -f1)
  base=$((20000 + (sum % 2000) * 10))
  for _ in $(seq 1 50); do
    ok=1
    for i in $(seq 0 ${#NODES[@]}); do
      if port_in_use $((base + i)); then ok=0; break; fi
    done
    [[ $ok -eq 1 ]] && { echo "$base"; return 0; }
    base=$((base + 10))
    [[ $base -gt 60000 ]] && base=20000
  done
  die "no free ports found"
}

write_config() {
  local base=$1 n first_port last_port
  rm -rf "$PREFIX/state" "$PREFIX/spool" "$PREFIX/log" "$PREFIX/run" "$PREFIX/tmp"
  mkdir -p "$PREFIX/etc" "$PREFIX/state" "$PREFIX/log" "$PREFIX/run" "$PREFIX/dev"
  for n in "${NODES[@]}"; do mkdir -p "$PREFIX/spool/$n"; done
  local mpi_lines="MpiDefault=none"
  if [[ $MPI -eq 1 ]]; then
    # One TmpFS per node: pmix puts each step's directory there, and nodes sharing /tmp collide.
    for n in "${NODES[@]}"; do mkdir -p "$PREFIX/tmp/$n"; done
    chmod 1777 "$PREFIX/tmp" "$PREFIX"/tmp/*
    mpi_lines="MpiDefault=pmix
TmpFS=$PREFIX/tmp/%n"
  fi
  local step_line=""
  [[ -n $MAX_STEPS ]] && step_line="MaxStepCount=$MAX_STEPS"
  for i in $(seq 0 $((GPUS - 1))); do
    [[ -c $PREFIX/dev/nvidia$i ]] || { rm -f "$PREFIX/dev/nvidia$i"; mknod "$PREFIX/dev/nvidia$i" c 1 3; }
  done
  first_port=$((base + 1))
  last_port=$((base + ${#NODES[@]}))
  cat >"$CONF" <<EOF
# Written by test/slurm/cluster.sh: a throw-away test cluster. Do not edit; restart instead.
ClusterName=themistest
SlurmctldHost=localhost
SlurmctldPort=$base
SlurmdPort=$first_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$PREFIX/state
SlurmdSpoolDir=$PREFIX/spool/%n
SlurmctldPidFile=$PREFIX/run/slurmctld.pid
SlurmdPidFile=$PREFIX/run/slurmd-%n.pid
SlurmctldLogFile=$PREFIX/log/slurmctld.log
SlurmdLogFile=$PREFIX/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
$mpi_lines
$step_line
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=$KILL_WAIT
MinJobAge=600
InactiveLimit=0
MailProg=/bin/true
GresTypes=gpu
NodeName=n[1-${#NODES[@]}] NodeHostname=localhost NodeAddr=127.0.0.1 Port=$first_port-$last_port CPUs=$CPUS Gres=gpu:$GPUS State=UNKNOWN
PartitionName=debug Nodes=n[1-${#NODES[@]}] Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$PREFIX/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=n[1-${#NODES[@]}] Name=gpu File=$PREFIX/dev/nvidia[0-$((GPUS - 1))]
EOF
  cat >"$PREFIX/env.sh" <<EOF
# source me: clients (sinfo, sbatch, srun, squeue, scancel) find the test cluster through SLURM_CONF.
export SLURM_CONF=$CONF
export THEMIS_SLURM_PREFIX=$PREFIX
case ":\$PATH:" in *:/usr/bin:*) ;; *) export PATH=\$PATH:/usr/bin ;; esac
EOF
}

# Pids of processes whose environment holds our marker (the daemons and slurmstepds).
marker_pids() {
  local f pid
  # One grep over every environ file (-z: NUL-separated entries); no fork per process.
  grep -lzxF "THEMIS_SLURM_MARKER=$MARKER" /proc/[0-9]*/environ 2>/dev/null | while read -r f; do
    pid=${f#/proc/}; pid=${pid%/environ}
    [[ $pid == "$$" ]] || echo "$pid"
  done
  return 0
}

# Descendants of the given pids (read from /proc/*/stat, no ps).
descendants() {
  local -A parent=()
  local f pid stat rest ppid
  for f in /proc/[0-9]*/stat; do
    pid=${f#/proc/}; pid=${pid%/stat}
    stat=$(<"$f") 2>/dev/null || continue
    rest=${stat##*) }
    read -r _ ppid _ <<<"$rest"
    parent[$pid]=$ppid
  done
  local -A want=()
  for pid in "$@"; do want[$pid]=1; done
  local changed=1
  while [[ $changed -eq 1 ]]; do
    changed=0
    for pid in "${!parent[@]}"; do
      if [[ -z ${want[$pid]:-} && -n ${want[${parent[$pid]}]:-} ]]; then want[$pid]=1; changed=1; echo "$pid"; fi
    done
  done
}

pidfile_pids() {
  local f
  for f in "$PREFIX"/run/*.pid; do [[ -f $f ]] && cat "$f"; done
  return 0
}

alive() { [[ -d /proc/$1 ]] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

print_logs() {
  local f
  for f in "$PREFIX"/log/*.log; do
    [[ -f $f ]] || continue
    echo "----- $f (last 40 lines) -----" >&2
    tail -40 "$f" >&2
  done
}

nodes_idle() {
  local out
  out=$(timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null) || return 1
  local n
  for n in "${NODES[@]}"; do
    grep -qE "^$n idle\$" <<<"$out" || return 1
  done
}

cmd_status() {
  [[ -f $CONF ]] || { echo "no cluster configured under $PREFIX"; return 1; }
  [[ -n $(marker_pids) ]] || { echo "no daemons running under $PREFIX"; return 1; }
  local out
  out=$(timeout 5 sinfo -h -N -o '%N %T' 2>&1) || { echo "controller not answering: $out"; return 1; }
  echo "$out"
  grep -qE ' (idle|mixed|allocated|completing)' <<<"$out" || return 1
}

cmd_start() {
  need_root
  # Daemons of this prefix still alive: a running cluster, or leftovers of a crashed one that would
  # hold ports and state. (Checked by marker first: sinfo hangs for seconds with no controller.)
  local left
  left=$(marker_pids)
  if [[ -n $left ]]; then
    if [[ -f $CONF ]] && timeout 5 sinfo -h >/dev/null 2>&1; then
      die "a cluster is already running under $PREFIX (stop it first: cluster.sh stop $PREFIX)"
    fi
    log "stopping leftovers from an earlier run: $(echo $left)"
    cmd_stop
  fi
  install_packages
  [[ $MPI -eq 1 ]] && install_mpi
  local base
  base=$(pick_ports)
  write_config "$base"
  log "starting slurmctld (port $base) and slurmd ${NODES[*]} under $PREFIX"
  env THEMIS_SLURM_MARKER="$MARKER" slurmctld -f "$CONF" ||
    { print_logs; die "slurmctld failed to start"; }
  local n
  for n in "${NODES[@]}"; do
    env THEMIS_SLURM_MARKER="$MARKER" slurmd -N "$n" -f "$CONF" ||
      { print_logs; cmd_stop || true; die "slurmd -N $n failed to start"; }
  done
  local deadline=$((SECONDS + IDLE_TIMEOUT))
  until nodes_idle; do
    if [[ $SECONDS -ge $deadline ]]; then
      echo "cluster.sh: nodes not idle after ${IDLE_TIMEOUT}s:" >&2
      timeout 5 sinfo -N -l >&2 || true
      timeout 5 scontrol show node >&2 || true
      print_logs
      cmd_stop || true
      die "cluster did not come up"
    fi
    sleep 0.3
  done
  log "cluster up: $(timeout 5 sinfo -h -N -o '%N:%T:%c cpus:%G' | tr '\n' ' ')"
  log "use it with: source $PREFIX/env.sh"
}

cmd_stop() {
  if [[ -f $CONF && -n $(marker_pids) ]] && timeout 5 squeue -h >/dev/null 2>&1; then
    local jobs
    jobs=$(timeout 5 squeue -h -o '%i' 2>/dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
      log "cancelling jobs: $jobs"
      # shellcheck disable=SC2086
      timeout 10 scancel $jobs 2>/dev/null || true
      local deadline=$((SECONDS + KILL_WAIT + 5))
      while [[ $SECONDS -lt $deadline ]]; do
        [[ -z $(timeout 5 squeue -h -t PD,R,CG,CF,S -o '%i' 2>/dev/null) ]] && break
        sleep 0.5
      done
    fi
    timeout 10 scontrol shutdown >/dev/null 2>&1 || true
  fi
  # Give the daemons a moment to exit on their own, then kill what is left by pid.
  local pids deadline=$((SECONDS + 10)) term_at=$((SECONDS + 2)) termed=0 p
  while :; do
    pids=$( (pidfile_pids; marker_pids) | sort -u)
    local live=()
    for p in $pids; do alive "$p" && live+=("$p"); done
    [[ ${#live[@]} -eq 0 ]] && break
    # Daemons that did not get (or ignore) the shutdown: SIGTERM by pid, SIGKILL at the deadline.
    if [[ $termed -eq 0 && $SECONDS -ge $term_at ]]; then kill -TERM "${live[@]}" 2>/dev/null || true; termed=1; fi
    if [[ $SECONDS -ge $deadline ]]; then
      local all
      all=$( (printf '%s\n' "${live[@]}"; descendants "${live[@]}") | sort -u)
      log "killing leftovers: $(echo $all)"
      # shellcheck disable=SC2086
      kill -9 $all 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.3
  done
  left=$(marker_pids)
  [[ -z $left ]] || die "processes still alive after stop: $left"
  rm -f "$PREFIX"/run/*.pid
  log "stopped"
}

case $CMD in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
