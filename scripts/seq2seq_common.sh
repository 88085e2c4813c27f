# Shared part of run_t5_glue.sh and run_t5_generation.sh (sourced, not run): runs run_seq2seq.py on each
# CONFIG x SEED. The output folder of a run is <output_dir of the config>/seed<SEED>.
#
# Environment overrides (all optional):
#   CONFIGS     space-separated config files                  (the script's list)
#   SEEDS       space-separated seeds                         (42)
#   NPROC       processes (GPUs) per run; > 1 uses torch.distributed.run   (1)
#   PYTHON      python interpreter                            (python3)
#   EXTRA_ARGS  not supported here: edit a copy of the config instead (a JSON config takes no flags)
#   DRY_RUN=1   print the commands, run nothing
#
# A run whose folder holds DONE is skipped; an interrupted run resumes from its last checkpoint. The
# first failing run stops the script (no retries).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT_NAME="$(basename "$0")"
SEEDS="${SEEDS:-42}"
NPROC="${NPROC:-1}"
PYTHON="${PYTHON:-python3}"
DRY_RUN="${DRY_RUN:-0}"

die() {
    echo "$SCRIPT_NAME: error: $*" >&2
    exit 2
}

[[ -n "${SEEDS// /}" ]] || die "SEEDS is empty; expected integers such as '42 43 44'"
for seed in $SEEDS; do
    [[ "$seed" =~ ^[0-9]+$ ]] || die "SEEDS: '$seed' is not a non-negative integer"
done
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || die "NPROC must be a positive integer, got '$NPROC'"
[[ "$DRY_RUN" == 0 || "$DRY_RUN" == 1 ]] || die "DRY_RUN must be 0 or 1, got '$DRY_RUN'"
[[ -z "${EXTRA_ARGS:-}" ]] || die "EXTRA_ARGS is not used by $SCRIPT_NAME: copy a config and edit it"
if (( NPROC > 1 )); then
    LAUNCH=("$PYTHON" -m torch.distributed.run --nproc_per_node="$NPROC" "$REPO_ROOT/run_seq2seq.py")
else
    LAUNCH=("$PYTHON" "$REPO_ROOT/run_seq2seq.py")
fi

# run_configs CONFIG...: one run per config and seed.
run_configs() {
    local config seed out
    for config in "$@"; do
        [[ -f "$config" ]] || die "config file not found: $config"
        out="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["output_dir"])' "$config")" \
            || die "$config: not a JSON object with \"output_dir\""
        [[ "$out" == /* ]] || out="$REPO_ROOT/$out"
        for seed in $SEEDS; do
            if [[ -f "$out/seed$seed/DONE" ]]; then
                echo "[skip] $out/seed$seed (DONE)"
                continue
            fi
            local cmd=("${LAUNCH[@]}" "$config" "$seed")
            echo "+ $(printf '%q ' "${cmd[@]}")"
            [[ "$DRY_RUN" == 1 ]] && continue
            (cd "$REPO_ROOT" && "${cmd[@]}") || {
                local rc=$?
                echo "$SCRIPT_NAME: run failed with exit code $rc: $config seed $seed; fix it and rerun" >&2
                exit "$rc"
            }
        done
    done
}
