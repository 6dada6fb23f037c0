-- wrk script for scripts/multi-replica-test: portal calls with tokens from $LOAD_TOKENS
-- (one per line), each answer counted by status. done() prints one line:
--   requests=N 2xx=N 4xx=N 5xx=N socket_errors=N p99_ms=N statuses=200:N,404:N,...

local threads = {}
local pool = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  counts = {}
  for token in io.lines(os.getenv("LOAD_TOKENS")) do
    pool[#pool + 1] = wrk.format("POST", "/api/v1/payments/stripe/customer-portal?test_mode=true", {
      ["Authorization"] = "Bearer " .. token,
      ["Content-Type"] = "application/json",
    }, '{"return_url": "https://app.example.com/account"}')
  end
  math.randomseed(os.time() * 100 + id)
end

function request()
  return pool[math.random(#pool)]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, classes = {}, { 0, 0, 0, 0, 0 }
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + n
      local class = math.floor(status / 100)
      classes[class] = classes[class] + n
    end
  end
  local statuses = {}
  for status, n in pairs(total) do statuses[#statuses + 1] = status .. ":" .. n end
  table.sort(statuses)
  local e = summary.errors
  io.write(string.format("requests=%d 2xx=%d 4xx=%d 5xx=%d socket_errors=%d p99_ms=%.1f statuses=%s\n",
    summary.requests, classes[2], classes[4], classes[5], e.connect + e.read + e.write + e.timeout,
    latency:percentile(99) / 1000, table.concat(statuses, ",")))
end
