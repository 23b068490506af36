-- wrk script for bench/load/queue.sh: the queue API of `vigil serve` under load.
--   QUEUE_MODE=push   POST /api/queues/Q/push, QUEUE_BATCH messages a request (1: the
--                     reference's {"content": ...}; more: {"messages": [...]})
--   QUEUE_MODE=pullack POST .../pull {"lease_seconds": 60, "max": QUEUE_BATCH}, then an ack of
--                     the ids it got, on the next request of the same thread
-- Each message is a transaction of ~190 bytes, as the reference's producers push. done() prints
-- one RESULT line with the messages moved per second (not requests).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tag", #threads)
end

function init(args)
  mode = os.getenv("QUEUE_MODE") or "push"
  batch = tonumber(os.getenv("QUEUE_BATCH") or "1")
  queue = os.getenv("QUEUE_NAME") or "BENCH"
  key = os.getenv("VIGIL_KEY")  -- the server's admin API key (bench/load/queue.sh)
  counter = 0
  messages = 0
  empty = 0
  acks = {}
  math.randomseed(tag * 7919 + os.time())
end

local function message()
  counter = counter + 1
  local customer = math.random(0, 4999)
  return string.format(
    '{"customer_id":"cust_%d","vendor_id":%d,"amount":%.2f,"status":"submitted","timestamp":"2018-08-%02dT%02d:%02d:%02d.%06d"}',
    customer, (customer * 2 + math.random(0, 50)) % 10000, math.random(100, 20000) / 100,
    math.random(1, 28), math.random(0, 23), math.random(0, 59), math.random(0, 59), counter % 1000000)
end

request = function()
  local headers = {["Content-Type"] = "application/json"}
  if key ~= nil and key ~= "" then headers["Authorization"] = "Bearer " .. key end
  if mode == "push" then
    local body
    if batch == 1 then
      body = '{"content":' .. message() .. ',"message_type":"transaction"}'
    else
      local parts = {}
      for i = 1, batch do parts[i] = '{"content":' .. message() .. ',"message_type":"transaction"}' end
      body = '{"messages":[' .. table.concat(parts, ",") .. ']}'
    end
    return wrk.format("POST", "/api/queues/" .. queue .. "/push", headers, body)
  end
  if #acks > 0 then
    local ids = table.remove(acks, 1)
    return wrk.format("POST", "/api/queues/" .. queue .. "/ack", headers, '{"ids":[' .. ids .. ']}')
  end
  return wrk.format("POST", "/api/queues/" .. queue .. "/pull", headers,
                    string.format('{"lease_seconds":60,"max":%d}', batch))
end

response = function(status, headers, body)
  if mode == "push" then
    if status == 201 then messages = messages + batch end
    return
  end
  if body:find('"messages":%[') then
    local ids = {}
    for id in body:gmatch('{"id":("[^"]+")') do ids[#ids + 1] = id end
    if #ids > 0 then
      table.insert(acks, table.concat(ids, ","))
    else
      empty = empty + 1
    end
  elseif status == 200 and body:find('"acked":') then
    messages = messages + tonumber(body:match('"acked":(%d+)'))
  end
end

done = function(summary, latency, requests)
  local moved, empties = 0, 0
  for _, t in ipairs(threads) do
    moved = moved + (t:get("messages") or 0)
    empties = empties + (t:get("empty") or 0)
  end
  io.write(string.format("RESULT requests=%d duration_s=%.2f mps=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d non2xx=%d empty=%d\n",
    summary.requests, summary.duration / 1e6, moved / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, empties))
end
