-- wrk script: POST the body in $BODY_FILE on every request (with $AUTHORIZATION as the Authorization
-- header when set) and print one JSON summary line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
if os.getenv("AUTHORIZATION") then wrk.headers["Authorization"] = os.getenv("AUTHORIZATION") end
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  io.write(string.format(
    "BENCHJSON {\"requests\":%d,\"duration_us\":%d,\"non2xx\":%d,\"errors\":%d," ..
    "\"timeouts\":%d,\"p50_us\":%d,\"p99_us\":%d,\"max_us\":%d}\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
