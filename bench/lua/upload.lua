-- POST /api/v1/documents: a 200 KB PDF as multipart/form-data (the body is prepared by the runner).
package.path = package.path .. ";" .. (os.getenv("BENCH_LUA") or "bench/lua") .. "/?.lua"
local common = require("common")
local token, items, body

function init(args)
  token, items = common.load(args[1])
  local f = assert(io.open(items[1], "rb"))
  body = f:read("*a")
  f:close()
end

function request()
  return wrk.format("POST", "/api/v1/documents", {["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "multipart/form-data; boundary=" .. items[2]}, body)
end
