-- wrk script: every request is a Stripe webhook delivery, a signed
-- checkout.session.completed event for a distinct new user, from the file in
-- $BENCH_EVENTS (one `signature<TAB>body` a line, made by `tools.py webhooks` just
-- before the run, so every signature is fresh). Each thread sends its own share of
-- the lines, in order; done() (bench/summary.lua) prints the figures bench/run reads.

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

-- What bench/run reads back: the same summary for every script.
dofile("bench/summary.lua")
