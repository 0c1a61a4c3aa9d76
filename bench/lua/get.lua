-- GET of a path from the list, in turn (inbox pages by cursor, single notices).
package.path = package.path .. ";" .. (os.getenv("BENCH_LUA") or "bench/lua") .. "/?.lua"
local common = require("common")
local token, items
local counter = 0

function init(args)
  token, items = common.load(args[1])
  counter = math.random(0, #items)
end

function request()
  counter = counter + 1
  return wrk.format("GET", items[(counter % #items) + 1], {["Authorization"] = "Bearer " .. token})
end
