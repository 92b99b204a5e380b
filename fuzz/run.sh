#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a bounded time each, starting from its
# checked-in seeds, and prints each one's executions and coverage from libFuzzer's final
# line. New inputs go to a scratch corpus (fuzz/scratch/<target>), never into corpus/; a
# crash leaves its input in fuzz/artifacts/<target>/ and stops the run.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]   (SECONDS defaults to 90; needs nightly and
# cargo-fuzz: `cargo install cargo-fuzz`). FUZZ_TARGET_DIR, when set, is the build directory
# (cargo-fuzz's --target-dir; fuzz/target otherwise).
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-90}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(frame_decoder gzip grpc_timeout grpc_message metadata status_details service_config codegen header_block)
fi
mkdir -p logs
target_dir=()
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then target_dir=(--target-dir "$FUZZ_TARGET_DIR"); fi
for target in "${targets[@]}"; do
    mkdir -p "scratch/$target"
    cargo +nightly fuzz run "${target_dir[@]}" -O "$target" "scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"logs/$target.log" 2>&1 || {
        echo "$target: FAILED, see fuzz/logs/$target.log and fuzz/artifacts/$target/"
        exit 1
    }
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "logs/$target.log" | tail -1)
    echo "$target: $done_line"
done
