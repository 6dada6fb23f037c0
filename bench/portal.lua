-- wrk script: every request is a portal call with a token picked at random from the
-- pool in $BENCH_TOKENS (one per line), so no per-user cache can make the service look
-- faster than it is. done() prints the figures bench/run reads, one `key=value` a line.

local pool = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("seed", thread_count)
end

function init(args)
  local path = os.getenv("BENCH_TOKENS") or error("BENCH_TOKENS is not set")
  local body = '{"return_url": "https://app.example.com/account"}'
  for token in io.lines(path) do
    -- Formatted once here, so each request costs wrk one table lookup.
    pool[#pool + 1] = wrk.format("POST", "/api/v1/payments/stripe/customer-portal?test_mode=true", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, body)
  end
  math.randomseed(os.time() * 100 + (seed or 0))
end

function request()
  return pool[math.random(#pool)]
end

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
