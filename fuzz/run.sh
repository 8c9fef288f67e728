#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), from the seeds, one after another.
#   fuzz/run.sh [SECONDS]
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
export RUSTC_BOOTSTRAP=1
for target in payloads arn formatter; do
    mkdir -p "corpus/$target"
    cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1
done
