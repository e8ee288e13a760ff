#!/bin/bash
# fe2 under PBS (PBS Pro / OpenPBS / Torque): a job that stops cleanly before its walltime
# and submits its own continuation until the run is complete. Submit from the folder that
# holds the case:
#
#   qsub docker/jobs/pbs.sh                                   # case.toml -> results/
#   qsub -v FE2_CASE=beam.toml,FE2_RESULTS=beam docker/jobs/pbs.sh
#
# How it works: PBS sends SIGTERM at the walltime and SIGKILL a few seconds later
# (kill_delay), too soon for a checkpoint, so fe2 is given --max-wall: the walltime minus
# a margin (FE2_MARGIN seconds). fe2 then stops by itself before the limit (it does not
# start a step that the last step's duration says would not end in time), writes a
# checkpoint of the last converged step, sets summary.json's status to "interrupted" and
# exits with status 5; the script then submits itself again (qsub), and the next job
# continues from the checkpoint (--restart) on however many ranks it gets. Any other exit
# (done: 0, bad input: 2, a solve that failed: 3) ends the chain.
#
# Settings (environment variables, e.g. through qsub -v; defaults in brackets):
#   FE2_CASE     the case file [case.toml]
#   FE2_RESULTS  the results folder [results]
#   FE2_LAUNCH   the MPI launcher [mpirun]; e.g. "mpirun apptainer exec fe2.sif"
#   FE2          the fe2 command [fe2]
#   FE2_MAX_WALL seconds fe2 may run [the job's walltime minus FE2_MARGIN]
#   FE2_MARGIN   seconds kept for the checkpoint and the exit [600]
#   FE2_SCRIPT   this script, to resubmit [$PBS_O_WORKDIR/docker/jobs/pbs.sh]
#
#PBS -N fe2
#PBS -l select=1:ncpus=8:mpiprocs=8
#PBS -l walltime=04:00:00
#PBS -j oe

set -u
cd "${PBS_O_WORKDIR:-.}" || exit 2
case_file=${FE2_CASE:-case.toml}
results=${FE2_RESULTS:-results}
launch=${FE2_LAUNCH:-mpirun}
fe2=${FE2:-fe2}
margin=${FE2_MARGIN:-600}
script=${FE2_SCRIPT:-$PWD/docker/jobs/pbs.sh}

max_wall=${FE2_MAX_WALL:-}
if [ -z "$max_wall" ]; then
  walltime=$(qstat -f "${PBS_JOBID:-}" 2>/dev/null | sed -n 's/^ *Resource_List.walltime = //p')
  if [[ "$walltime" =~ ^([0-9]+):([0-9]+):([0-9]+)$ ]]; then
    max_wall=$(( 10#${BASH_REMATCH[1]} * 3600 + 10#${BASH_REMATCH[2]} * 60 + 10#${BASH_REMATCH[3]} - margin ))
  else
    max_wall=$(( 4 * 3600 - margin ))  # the walltime requested above
  fi
fi

restart=()
if [ -f "$results/checkpoint/latest.json" ]; then
  restart=(--restart)
fi

# shellcheck disable=SC2086  # the launcher and fe2 commands may be several words
$launch $fe2 run "$case_file" -o "$results" --max-wall "$max_wall" "${restart[@]}"
status=$?

if [ "$status" -eq 5 ]; then
  echo "fe2: stopped before the walltime; submitting the continuation"
  qsub -v "FE2_CASE=$case_file,FE2_RESULTS=$results,FE2_LAUNCH=$launch,FE2=$fe2,FE2_MARGIN=$margin,FE2_SCRIPT=$script" \
    "$script"
fi
exit "$status"
