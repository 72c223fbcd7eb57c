#!/usr/bin/env bash
# use_fiber against asio::spawn, interleaved: ROUNDS rounds (default 15), each the medians of 3
# repetitions of BM_AsioTimer and BM_AsioPost for both; prints per-round ratios and their median.
# Run from the build directory (needs bench/weave_bench). See bench/README.md.
set -euo pipefail
rounds=${ROUNDS:-15}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for _ in $(seq 1 "$rounds"); do
  ./bench/weave_bench --benchmark_filter='BM_Asio(Timer|Post)/(use_fiber|asio_spawn)$' \
    --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    --benchmark_min_time=0.1 --benchmark_format=csv 2>/dev/null | grep median >>"$out"
done
python3 - "$out" <<'PY'
import statistics as st, sys
d = {}
for line in open(sys.argv[1]):
    f = line.split(',')
    d.setdefault(f[0].strip('"').replace('_median', ''), []).append(float(f[2]))
for b in ('BM_AsioTimer', 'BM_AsioPost'):
    fib, spa = d[b + '/use_fiber'], d[b + '/asio_spawn']
    r = [x / y for x, y in zip(fib, spa)]
    print(f"{b}: use_fiber/spawn per round: median {st.median(r):.3f}, range "
          f"{min(r):.3f}-{max(r):.3f}, use_fiber faster in {sum(x < 1 for x in r)} of {len(r)}")
PY
