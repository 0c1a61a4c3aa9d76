-- POST /api/v1/notices: a violation report about one of the district's members, each with its own Idempotency-Key.
package.path = package.path .. ";" .. (os.getenv("BENCH_LUA") or "bench/lua") .. "/?.lua"
local common = require("common")
local token, items, today
local counter, tid = 0, 0
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  token, items = common.load(args[1])
  today = table.remove(items, 1)
  tid = tonumber(wrk.thread:get("tid")) or 0
  math.randomseed(os.time() * 1000 + tid)
end

function request()
  counter = counter + 1
  local card = items[(counter % #items) + 1]
  local body = '{"kind":"violation.reported","member_card_no":"' .. card ..
    '","payload":{"summary":"Kiểm tra tải","observed_on":"' .. today .. '","severity":"low"}}'
  local key = string.format("bench-%d-%d-%d", tid, math.random(1, 2^30), counter)
  return wrk.format("POST", "/api/v1/notices", {
    ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json", ["Idempotency-Key"] = key}, body)
end
