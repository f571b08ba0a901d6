#!/usr/bin/env bash
# Runs the bench step (../../examples/bench.rs, ../shared/DESIGN.md §3.2) in
# every peer that is available, back to back, for the three side-by-side
# configurations of README.md, and prints one JSON line per run on stdout,
# each with a leading "config" field. What is skipped, and why, goes to
# stderr.
#
#   benches/peers/run_all.sh              # every configuration
#   benches/peers/run_all.sh reference    # one or more by name
#
# Configurations (all: vocab 20000, E 128, B 64, T 40, 4 classes, Adam 1e-3):
#   reference  LSTM H128, one layer
#   bilstm2    bidirectional 2-layer LSTM H64
#   gru        GRU H128, one layer
#
# Environment:
#   STEPS         timed steps per run (default 20)
#   PEERS         which peers, in order (default "wgrnn torch burn-wgpu burn-flex")
#   TORCH_DEVICE  torch's device (default cpu)
#   BURN_LSTM     the built burn peer (default /tmp/burn-lstm/target/release/burn-lstm;
#                 build it as README.md says)
# wgrnn runs through `cargo run --release --example bench` (built on first
# use; CARGO_TARGET_DIR is honoured).
set -u
cd "$(dirname "$0")/../.." || exit 1

STEPS=${STEPS:-20}
PEERS=${PEERS:-"wgrnn torch burn-wgpu burn-flex"}
TORCH_DEVICE=${TORCH_DEVICE:-cpu}
BURN_LSTM=${BURN_LSTM:-/tmp/burn-lstm/target/release/burn-lstm}

# name | cell | hidden | layers | bidirectional (0/1)
CONFIGS=(
    "reference lstm 128 1 0"
    "bilstm2 lstm 64 2 1"
    "gru gru 128 1 0"
)
VOCAB=20000 INPUT=128 BATCH=64 SEQ=40 CLASSES=4

say() { echo "run_all: $*" >&2; }

# Prefixes each JSON line of stdin with "config":NAME.
tag() { sed -e "s/^{/{\"config\":\"$1\",/"; }

# Whether PEER can run here; says why not (once, from the caller's loop).
available() {
    case $1 in
        wgrnn) command -v cargo >/dev/null || { say "wgrnn: cargo not found; skipped"; return 1; } ;;
        torch) python3 -c 'import torch' 2>/dev/null || { say "torch: python3 cannot import torch; skipped"; return 1; } ;;
        burn-wgpu | burn-flex)
            [ -x "$BURN_LSTM" ] || {
                say "$1: no burn peer at $BURN_LSTM (build it as benches/peers/README.md says, or set BURN_LSTM); skipped"
                return 1
            } ;;
        *) say "unknown peer $1 (known: wgrnn torch burn-wgpu burn-flex); skipped"; return 1 ;;
    esac
}

# Runs one peer for one configuration; prints its JSON line or says why not.
run_peer() {
    local peer=$1 name=$2 cell=$3 hidden=$4 layers=$5 bidir=$6
    local common=(--cell "$cell" --vocab $VOCAB --input $INPUT --hidden "$hidden" --layers "$layers"
        --batch $BATCH --seq $SEQ --classes $CLASSES --steps "$STEPS")
    [ "$bidir" = 1 ] && common+=(--bidirectional)
    local out
    case $peer in
        wgrnn) out=$(cargo run --release --quiet --example bench -- "${common[@]}" --json) ;;
        torch) out=$(python3 scripts/torch_bench.py "${common[@]}" --device "$TORCH_DEVICE") ;;
        burn-wgpu | burn-flex)
            local args=(--vocab $VOCAB --input $INPUT --hidden "$hidden" --batch $BATCH --seq $SEQ --steps "$STEPS")
            if [ "$bidir" = 1 ] && [ "$cell" = lstm ]; then
                # burn's BiLstm is one layer: the peer stacks them by hand.
                args+=(bilstm --layers "$layers")
            elif [ "$layers" != 1 ] || [ "$bidir" = 1 ]; then
                say "$peer: the burn peer stacks bidirectional LSTMs only; $name skipped"
                return
            fi
            [ "$cell" = gru ] && args+=(gru)
            [ "$peer" = burn-flex ] && args+=(flex)
            out=$("$BURN_LSTM" "${args[@]}") ;;
    esac || { say "$peer: $name failed (exit $?)"; return; }
    # Only the JSON line: a peer may print other lines before it.
    printf '%s\n' "$out" | grep '^{' | tag "$name"
}

active=()
for peer in $PEERS; do
    available "$peer" && active+=("$peer")
done

wanted=("$@")
for config in "${CONFIGS[@]}"; do
    read -r name cell hidden layers bidir <<<"$config"
    if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " == *" $name "* ]]; then
        continue
    fi
    for peer in "${active[@]}"; do
        run_peer "$peer" "$name" "$cell" "$hidden" "$layers" "$bidir"
    done
done
