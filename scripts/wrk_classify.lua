-- wrk_classify.lua: POST one short text per request to /v1/classify (or /v1/embed),
-- cycling through the request bodies in $WRK_BODIES (one JSON body per line, made by
-- scripts/load_test.sh from the Banking77 sample queries). Each thread starts at a
-- different line. done() prints one machine-readable line:
--   RESULT requests=N seconds=S rps=R p50_ms=A p90_ms=B p99_ms=C non2xx=E socket_errors=F
-- non2xx counts responses with a status other than 2xx or 3xx (wrk's errors.status).

local bodies = {}
local path = os.getenv("WRK_BODIES")
local route = os.getenv("WRK_ROUTE") or "/v1/classify"
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  for line in io.lines(path) do
    if #line > 0 then table.insert(bodies, line) end
  end
  if #bodies == 0 then error("no request bodies in " .. tostring(path)) end
  counter = ((id or 1) * 7919) % #bodies
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter % #bodies + 1
  return wrk.format("POST", route, nil, bodies[counter])
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f rps=%.1f p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
