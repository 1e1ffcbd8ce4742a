-- `make bench` variant 3: the seed's two login counters written as an Envoy Lua filter, with the
-- Lua stats API: what a mesh admin would write instead of app-metrics-wasm.
--   POST /login answered 2xx      -> successful_login_details_total
--   POST /login answered 400/401  -> failed_login_details_total
-- The request and response handlers share nothing but the stream's dynamic metadata.

function envoy_on_request(handle)
  local headers = handle:headers()
  if headers:get(":method") ~= "POST" then
    return
  end
  local path = headers:get(":path") or ""
  local query = string.find(path, "?", 1, true)
  if query then
    path = string.sub(path, 1, query - 1)
  end
  if path == "/login" then
    handle:streamInfo():dynamicMetadata():set("bench.login", "login", true)
  end
end

function envoy_on_response(handle)
  local login = handle:streamInfo():dynamicMetadata():get("bench.login")
  if login == nil then
    return
  end
  local status = tonumber(handle:headers():get(":status")) or 0
  if status >= 200 and status < 300 then
    handle:stats():counter("successful_login_details_total"):inc()
  elseif status == 400 or status == 401 then
    handle:stats():counter("failed_login_details_total"):inc()
  end
end
