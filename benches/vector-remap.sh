#!/usr/bin/env bash
# The VRL program of the summary bench (benches/device_process_events.vrl) in
# the real Vector, configured as its docs say: an `exec` source reading the
# workload's rows as JSON lines, a `remap` transform running the program, a
# `file` sink writing JSON. Prints the rate from the first event written to
# the last (Vector's start-up left out) and checks that Vector wrote exactly
# the collector's events. Run from the repository root; VECTOR names the
# binary (default ../shared/tools/vector), THREADS Vector's worker threads
# (default 1, one core as the bench's other figures).
#
# ../shared/tools/vector is built without VRL's crypto functions, so the
# program's `sha2(key, ...)` (metadata.uid) becomes `encode_base16(key)`
# there, and the check compares everything but metadata.uid. That build
# also has `opt-level = 1` and no jemalloc: its rate bounds shipped Vector
# from below.
set -euo pipefail
vector=${VECTOR:-../shared/tools/vector}
threads=${THREADS:-1}
dir=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$dir"' EXIT
BENCH_WRITE_ROWS="$dir/rows.ndjson" cargo bench --bench summary >/dev/null
rows=$(wc -l <"$dir/rows.ndjson")
sed 's/sha2(key, variant: "SHA-256")/encode_base16(key)/' benches/device_process_events.vrl >"$dir/program.vrl"
grep -q 'encode_base16(key)' "$dir/program.vrl" || { echo "the program's sha2 call was not found" >&2; exit 1; }
cat >"$dir/pipeline.yaml" <<YAML
data_dir: $dir
sources:
  rows:
    type: exec
    command: [cat, $dir/rows.ndjson]
    mode: streaming
    streaming:
      respawn_on_exit: false
    decoding:
      codec: json
    log_namespace: true
transforms:
  ocsf:
    type: remap
    inputs: [rows]
    file: $dir/program.vrl
sinks:
  out:
    type: file
    inputs: [ocsf]
    path: $dir/out.ndjson
    encoding:
      codec: json
YAML
"$vector" --threads "$threads" --quiet --config "$dir/pipeline.yaml" &
pid=$!
count() { [ -f "$dir/out.ndjson" ] && wc -l <"$dir/out.ndjson" || echo 0; }
first_n=0
while [ "$(count)" -eq 0 ]; do sleep 0.02; done
first_t=$(date +%s.%N); first_n=$(count)
deadline=$((SECONDS + 300))
while [ "$(count)" -lt "$rows" ]; do
  [ $SECONDS -lt $deadline ] || { echo "Vector wrote $(count) of $rows events in 300 s" >&2; exit 1; }
  sleep 0.02
done
last_t=$(date +%s.%N); last_n=$(count)
python3 - "$dir/out.ndjson" "$dir/rows.ndjson.expected" <<'PY'
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
want = [json.loads(l) for l in open(sys.argv[2])]
def strip(e):
    e["metadata"].pop("uid")
    return e
key = lambda e: e["metadata"]["original_event_uid"]
assert len(got) == len(want), (len(got), len(want))
got, want = sorted(map(strip, got), key=key), sorted(map(strip, want), key=key)
for g, w in zip(got, want):
    assert g == w, f"Vector's event differs from the collector's:\n{g}\n{w}"
PY
echo "BENCH name=vector_remap_rows_per_s.DeviceProcessEvents value=$(python3 -c "print(f'{($last_n - $first_n) / ($last_t - $first_t):.0f}')") unit=rows/s threads=$threads"
