-- wrk's end-of-run summary as `name=value` lines, which bench/run reads; loaded by
-- each load script with dofile (wrk runs from the repository's root).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("requests=%d\n", summary.requests))
  io.write(string.format("duration_us=%d\n", summary.duration))
  io.write(string.format("non2xx=%d\n", e.status))
  io.write(string.format("socket_errors=%d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("timeouts=%d\n", e.timeout))
  io.write(string.format("p50_us=%d\n", latency:percentile(50)))
  io.write(string.format("p99_us=%d\n", latency:percentile(99)))
  io.write(string.format("max_us=%d\n", latency.max))
end
