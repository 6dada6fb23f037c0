-- wrk script: every request is a portal call with a token picked at random from the
-- pool in $BENCH_TOKENS (one per line), so no per-user cache can make the service look
-- faster than it is. done() (bench/summary.lua) prints the figures bench/run reads.

local pool = {}
local thread_count = 0
-- $BENCH_RAMP_MS: each connection sends its first request after a random pause of up
-- to this long, as users' clicks arrive spread out rather than in one instant. wrk
-- starts its latency clock after the pause, so the pause is never counted. The first
-- $BENCH_RAMP_REQUESTS calls in a thread are its connections' first requests: wrk
-- opens every connection before any answer can come back.
local ramp_ms = tonumber(os.getenv("BENCH_RAMP_MS") or "0")
local ramp_left = tonumber(os.getenv("BENCH_RAMP_REQUESTS") or "0")

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

-- Only with a ramp: wrk then sets a timer before every request, which costs it CPU.
if ramp_ms > 0 then
  function delay()
    if ramp_left <= 0 then
      return 0
    end
    ramp_left = ramp_left - 1
    return math.random(0, ramp_ms)
  end
end

-- What bench/run reads back: the same summary for every script.
dofile("bench/summary.lua")
