#!/bin/bash
# fe2 under SLURM: a job that stops cleanly before its time limit and requeues itself
# until the run is complete. Submit from the folder that holds the case:
#
#   sbatch docker/jobs/slurm.sh                          # case.toml -> results/
#   FE2_CASE=beam.toml FE2_RESULTS=beam sbatch --export=ALL docker/jobs/slurm.sh
#
# How it works: 5 minutes before the limit SLURM sends SIGUSR1 to this script
# (--signal=B:USR1@300), which passes it on to the launcher (srun and Open MPI's mpirun both
# forward SIGUSR1 to every rank). fe2 abandons the step it is on, writes a checkpoint of
# the last converged step, sets summary.json's status to "interrupted" and exits with
# status 5; the script then requeues the job (scontrol requeue), and the requeued job
# continues from the checkpoint (--restart) on however many ranks it gets. Leave enough
# time for one checkpoint (seconds, or minutes for very large runs) between the signal and
# the limit. A run that ends for any other reason (done: 0, bad input: 2, a solve that
# failed: 3) is not requeued.
#
# Settings (environment variables; defaults in brackets):
#   FE2_CASE     the case file [case.toml]
#   FE2_RESULTS  the results folder [results]
#   FE2_LAUNCH   the MPI launcher [srun]; e.g. "mpirun", or
#                "srun apptainer exec fe2.sif" for the container image
#   FE2          the fe2 command [fe2]
#
#SBATCH --job-name=fe2
#SBATCH --ntasks=8
#SBATCH --time=04:00:00
#SBATCH --signal=B:USR1@300
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=fe2-%j.log

set -u
case_file=${FE2_CASE:-case.toml}
results=${FE2_RESULTS:-results}
launch=${FE2_LAUNCH:-srun}
fe2=${FE2:-fe2}

# a results folder with a checkpoint is this job's own run, stopped before: continue it
restart=()
if [ -f "$results/checkpoint/latest.json" ]; then
  restart=(--restart)
fi

# shellcheck disable=SC2086  # the launcher and fe2 commands may be several words
$launch $fe2 run "$case_file" -o "$results" "${restart[@]}" &
pid=$!
trap 'kill -USR1 "$pid" 2>/dev/null' USR1 TERM INT
wait "$pid"
status=$?
# a trapped signal interrupts `wait` (status > 128): wait again for fe2 to finish its stop
while [ "$status" -gt 128 ] && kill -0 "$pid" 2>/dev/null; do
  wait "$pid"
  status=$?
done

if [ "$status" -eq 5 ]; then
  echo "fe2: stopped before the time limit; requeueing job ${SLURM_JOB_ID:-?} to continue from the checkpoint"
  scontrol requeue "${SLURM_JOB_ID:?}"
fi
exit "$status"
