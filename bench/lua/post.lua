-- POST to a path from the list, in turn, with no body (acknowledgements).
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
  return wrk.format("POST", items[(counter % #items) + 1], {["Authorization"] = "Bearer " .. token,
    ["Content-Length"] = "0"})
end
