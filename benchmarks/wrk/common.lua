-- Shared by the workload scripts (loaded with dofile): reading the request
-- parts the harness wrote, and a done() that writes wrk's summary as JSON to
-- $BENCH_OUT so the harness never parses wrk's human-readable output.
local M = {}

function M.read_file(path)
  if path == nil or path == "" then return "" end
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function M.read_lines(path)
  local lines = {}
  for line in M.read_file(path):gmatch("[^\n]+") do
    table.insert(lines, line)
  end
  return lines
end

-- Headers file: one "Name: value" per line.
function M.apply_headers(path)
  wrk.headers["Content-Type"] = "application/json"
  for _, line in ipairs(M.read_lines(path)) do
    local name, value = line:match("^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
end

function M.done(summary, latency, requests)
  local e = summary.errors
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
  out:close()
end

return M
