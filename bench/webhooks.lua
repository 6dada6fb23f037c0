-- wrk script: every request is a Stripe webhook delivery, a signed
-- checkout.session.completed event for a distinct new user, from the file in
-- $BENCH_EVENTS (one `signature<TAB>body` a line, made by `tools.py webhooks` just
-- before the run, so every signature is fresh). Each thread sends its own share of
-- the lines, in order; done() prints the figures bench/run reads, as portal.lua does.

local thread_count = 0
local requests = {}
local next_request = 1

function setup(thread)
  thread_count = thread_count + 1
  thread:set("index", thread_count)
end

function init(args)
  local path = os.getenv("BENCH_EVENTS") or error("BENCH_EVENTS is not set")
  local threads = tonumber(os.getenv("BENCH_THREADS") or "2")
  local target = os.getenv("BENCH_WEBHOOK_PATH") or error("BENCH_WEBHOOK_PATH is not set")
  local line_number = 0
  for line in io.lines(path) do
    line_number = line_number + 1
    if line_number % threads == (index or 1) - 1 then
      local signature, body = line:match("^([^\t]+)\t(.*)$")
      requests[#requests + 1] = wrk.format("POST", target, {
        ["Stripe-Signature"] = signature,
        ["Content-Type"] = "application/json; charset=utf-8",
      }, body)
    end
  end
end

-- Past the end it starts over: repeats are duplicates, which bench/run reports.
function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
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
