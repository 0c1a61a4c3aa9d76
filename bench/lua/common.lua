-- Shared by the scenarios: read the data file the runner wrote (line 1: token, then one item per line).
local M = {}

function M.load(path)
  local lines = {}
  for line in io.lines(path) do lines[#lines + 1] = line end
  local token = table.remove(lines, 1)
  return token, lines
end

return M
