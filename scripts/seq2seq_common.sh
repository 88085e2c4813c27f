# Shared part of run_t5_glue.sh and run_t5_generation.sh (sourced, not run): runs run_seq2seq.py on each
# CONFIG x SEED. The output folder of a run is <output_dir of the config>/seed<SEED>.
#
# Environment overrides (all optional):
#   CONFIGS     space-separated config files                  (the script's list)
#   SEEDS       space-separated seeds                         (42)
#   NPROC       processes (GPUs) per run; > 1 uses torch.distributed.run   (1). The global batch stays the
#               config's: its gradient_accumulation_steps is divided by NPROC (refused if NPROC does not divide it)
#   PYTHON      python interpreter                            (python3)
#   EXTRA_ARGS  more run_seq2seq.py flags, split on whitespace; they override the config's keys
#   DRY_RUN=1   print the commands, run nothing
#
# A run whose folder holds DONE is skipped; an interrupted run resumes from its last checkpoint. The
# first failing run stops the script (no retries). The marker's name is DONE_FILE of
# propetl_adapters/experiments/run_folder.py; tests/scripts/test_shell_scripts.py checks they agree.
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
read -r -a EXTRA <<< "${EXTRA_ARGS:-}"
if (( NPROC > 1 )); then
    LAUNCH=("$PYTHON" -m torch.distributed.run --nproc_per_node="$NPROC" "$REPO_ROOT/run_seq2seq.py")
else
    LAUNCH=("$PYTHON" "$REPO_ROOT/run_seq2seq.py")
fi

# run_configs CONFIG...: one run per config and seed.
run_configs() {
    local config seed out settings accumulation
    for config in "$@"; do
        [[ -f "$config" ]] || die "config file not found: $config"
        settings="$("$PYTHON" -c 'import json, sys; c = json.load(open(sys.argv[1]))
print(int(c.get("gradient_accumulation_steps", 1)), c["output_dir"])' "$config")" \
            || die "$config: not a JSON object with \"output_dir\" and an integer \"gradient_accumulation_steps\""
        accumulation="${settings%% *}"
        out="${settings#* }"
        [[ "$out" == /* ]] || out="$REPO_ROOT/$out"
        local flags=()
        if (( NPROC > 1 )); then
            (( accumulation % NPROC == 0 )) || die "$config: gradient_accumulation_steps $accumulation is not" \
                "divisible by NPROC=$NPROC, so the config's global batch cannot be kept; use an NPROC that divides it"
            flags=(--gradient_accumulation_steps "$(( accumulation / NPROC ))")
        fi
        for seed in $SEEDS; do
            if [[ -f "$out/seed$seed/DONE" ]]; then
                echo "[skip] $out/seed$seed (DONE)"
                continue
            fi
            local cmd=("${LAUNCH[@]}" "$config" "$seed" ${flags[@]+"${flags[@]}"} ${EXTRA[@]+"${EXTRA[@]}"})
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
