-- wrk script: POST /v1/score with a new transaction each time, spread over 5,000 customers and
-- 10,000 terminals (the handbook's population), amounts and times like the simulator's.
local counter = 0
local thread_tag = 0

function setup(thread)
  thread_tag = thread_tag + 1
  thread:set("tag", thread_tag)
end

function init(args)
  math.randomseed(tag * 7919 + os.time())
  nonce = math.random(1, 2000000000)
  headers = {["Content-Type"] = "application/json"}
  local key = os.getenv("VIGIL_KEY")  -- an API key (bench/load/run.sh); none with --auth off
  if key ~= nil and key ~= "" then headers["Authorization"] = "Bearer " .. key end
end

request = function()
  counter = counter + 1
  local customer = math.random(0, 4999)
  local body = string.format(
    '{"transaction_id":"L%d-%d-%d","customer_id":"%d","terminal_id":"%d","amount":%.2f,' ..
    '"timestamp":"2018-08-%02dT%02d:%02d:%02dZ"}',
    nonce, tag, counter, customer, (customer * 2 + math.random(0, 50)) % 10000,
    math.random(100, 20000) / 100, math.random(1, 28), math.random(0, 23), math.random(0, 59),
    math.random(0, 59))
  return wrk.format("POST", "/v1/score", headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d duration_s=%.2f rps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
