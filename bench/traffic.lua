-- `make bench` traffic for wrk: a fixed cycle of 8 requests, pre-formatted once per thread.
--   1 x POST /login              -> 200 (successful login)
--   1 x POST /login, failing     -> 401 (failed login)
--   6 x GET  /users/{id}         -> 200 (the /users/{user_id} handler template)
-- POSTs carry no body (Content-Length: 0): a direct_response answering a POST before its body
-- is read closes the connection, and wrk would then measure connection setup.
-- So 1 in 8 responses is a 401: wrk reports those as "Non-2xx or 3xx responses" (expected).

local cycle = nil
local i = 0

local function build()
  local list = {}
  table.insert(list, wrk.format("POST", "/login", { ["Host"] = "app", ["Content-Length"] = "0" }))
  table.insert(list, wrk.format("POST", "/login",
    { ["Host"] = "app", ["Content-Length"] = "0", ["x-bench-login"] = "fail" }))
  for _, id in ipairs({ 1, 42, 7, 1000, 13, 256 }) do
    table.insert(list, wrk.format("GET", "/users/" .. id, { ["Host"] = "app" }))
  end
  return list
end

request = function()
  if cycle == nil then
    cycle = build()
  end
  i = i % #cycle + 1
  return cycle[i]
end
