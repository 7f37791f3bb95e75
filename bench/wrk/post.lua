-- wrk script for Lockgate's bench: POSTs one fixed request, prints a JSON summary at the end.
-- The request comes from the environment, so one script serves every scenario:
--   BENCH_BODY_FILE  path of the request body
--   BENCH_HEADERS    header lines, "Name: value", separated by newlines
--   BENCH_METHOD     defaults to POST
--   BENCH_TIMING=1   time each request here (CLOCK_MONOTONIC via LuaJIT's ffi) and report those
--                    percentiles; for one connection per thread only (c=1 with -t1).
--
-- Why BENCH_TIMING: wrk 4.1's own latency histogram comes out inflated when another process shares the
-- load core (seen here: mean 600 us reported for requests that took 13 us, with requests x mean far above
-- the run's duration). Its request counts stay exact, so RPS comes from wrk either way.

local path = os.getenv("BENCH_BODY_FILE")
if path then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
wrk.method = os.getenv("BENCH_METHOD") or "POST"
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = line:match("^%s*([^:]+):%s*(.-)%s*$")
  if name then
    wrk.headers[name] = value
  end
end

local timing = os.getenv("BENCH_TIMING") == "1"
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

if timing then
  local ffi = require("ffi")
  ffi.cdef([[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]])
  local ts = ffi.new("bench_timespec")
  local function now_us()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
  end
  local req, t0 = nil, 0
  hist = {} -- latency in 0.1 us buckets -> count; read by done() through thread:get
  function request()
    req = req or wrk.format()
    t0 = now_us()
    return req
  end
  function response(status, headers, body)
    local key = math.floor((now_us() - t0) * 10)
    hist[key] = (hist[key] or 0) + 1
  end
end

local function own_latency()
  local merged, keys, total, sum = {}, {}, 0, 0
  for _, t in ipairs(threads) do
    for k, n in pairs(t:get("hist") or {}) do
      if not merged[k] then
        keys[#keys + 1] = k
        merged[k] = 0
      end
      merged[k] = merged[k] + n
      total = total + n
      sum = sum + k * n
    end
  end
  if total == 0 then
    return "null"
  end
  table.sort(keys)
  local qs, p, seen, qi = { 50, 75, 90, 99, 99.9 }, {}, 0, 1
  for _, k in ipairs(keys) do
    seen = seen + merged[k]
    while qi <= #qs and seen >= math.ceil(qs[qi] / 100 * total) do
      p[#p + 1] = string.format('"%s": %.1f', tostring(qs[qi]), k / 10)
      qi = qi + 1
    end
  end
  return string.format(
    '{"count": %d, "min": %.1f, "max": %.1f, "mean": %.2f, "p": {%s}}',
    total, keys[1] / 10, keys[#keys] / 10, sum / total / 10, table.concat(p, ", ")
  )
end

-- The harness reads the line that starts with BENCH_JSON; latencies are in microseconds.
function done(summary, latency, requests)
  local p = {}
  for _, q in ipairs({ 50, 75, 90, 99, 99.9 }) do
    p[#p + 1] = string.format('"%s": %.1f', tostring(q), latency:percentile(q))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"min": %.1f, "max": %.1f, "mean": %.1f, "stdev": %.1f, "p": {%s}}, "own_latency_us": %s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev, table.concat(p, ", "),
    timing and own_latency() or "null"
  ))
end
