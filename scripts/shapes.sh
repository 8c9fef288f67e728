#!/usr/bin/env bash
# Runs the shapes benchmark and prints its BENCHMARKS.md table: ours against the stock
# fmt().json() on each shape, with allocations per operation.
#   scripts/shapes.sh > /tmp/shapes.md
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Without the opentelemetry feature (as most services build), then its own row with it.
cargo bench --quiet --bench shapes -- --output-format bencher >"$out/run" 2>"$out/log"
cargo bench --quiet --features opentelemetry --bench shapes -- --output-format bencher OpenTelemetry \
    | grep -E "OpenTelemetry" >>"$out/run" 2>>"$out/log"

python3 - "$out/run" <<'PY'
import re, sys

times, allocs, order = {}, {}, []
for line in open(sys.argv[1]):
    m = re.match(r"test shape \| (.+)/(ours|stock|floor) \.\.\. bench:\s+([\d,]+) ns/iter", line)
    if m:
        times[(m.group(1), m.group(2))] = int(m.group(3).replace(",", ""))
        if m.group(1) not in order:
            order.append(m.group(1))
    m = re.match(r"alloc\t(.+)\t(ours|stock)\t([\d.]+)", line)
    if m:
        allocs[(m.group(1), m.group(2))] = float(m.group(3))

print("| shape | ours ns | stock ns | ratio | no formatter ns | allocs ours/stock |")
print("|---|---:|---:|---:|---:|---:|")
for name in order:
    o, s = times[(name, "ours")], times[(name, "stock")]
    f = times.get((name, "floor"))
    floor = f"{f:,}" if f is not None else "–"
    print(f"| {name} | {o:,} | {s:,} | {o / s:.2f} | {floor} | {allocs[(name, 'ours')]:g}/{allocs[(name, 'stock')]:g} |")
PY
