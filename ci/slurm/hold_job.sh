#!/bin/sh
# hold_job.sh RULE SECONDS -- inside a Slurm job submitted by snakemake-executor-plugin-slurm: if the job runs rule
# RULE (the plugin's --comment rule_RULE or rule_RULE_wildcards_...), sleep until SECONDS after the job's start
# (Slurm's own StartTime, the time its limit counts from); in any other job, or outside Slurm, return at once.
#
# tests/test_slurm_integration.py passes it as `--precommand "trap '.../hold_job.sh RULE 100' EXIT"`: the job's shell
# runs it after Snakemake has run the rule, so the job takes at least SECONDS of wall time on every attempt without
# changing what the rule computes. Slurm enforces wall time only, so to Slurm this job is one that needs 100 s: over
# a 1-minute limit, under a 2-minute one. A sleep, unlike a longer training, does not depend on the CPU load, and
# the window is narrow: slurmctld checks time limits every 30 s, so a 1-minute job is killed 60-90 s after it
# started and a 2-minute one is safe only below 120 s.
set -eu
rule=$1
seconds=$2
[ -n "${SLURM_JOB_ID:-}" ] || exit 0
info=$(squeue -h -j "$SLURM_JOB_ID" -o '%k|%S' || { sleep 2 && squeue -h -j "$SLURM_JOB_ID" -o '%k|%S'; })
comment=${info%%|*}
start=${info#*|}
case "$comment" in
  "rule_$rule" | "rule_${rule}_wildcards_"*) ;;
  *) exit 0 ;;
esac
end=$(($(date -d "$start" +%s) + seconds))
now=$(date +%s)
if [ "$now" -lt "$end" ]; then
  echo "hold_job.sh: job $SLURM_JOB_ID ($comment) holds until $seconds s after its start ($start)" >&2
  sleep $((end - now))
fi
