-- wrk script for bench/run.py: POSTs one fixed body with fixed headers and,
-- when the run ends, prints one JSON line with the figures run.py reads.
--
--   wrk ... -s bench/wrk/post.lua URL -- BODY_FILE 'name: value' ...
--
-- Every request is the same, so wrk formats it once (no request() hook and
-- no response() hook, which would make wrk parse every body and cost the
-- load generator time that belongs to the server under test).

function init(args)
  local f = assert(io.open(args[1], "rb"))
  wrk.body = f:read("*a")
  f:close()
  wrk.method = "POST"
  for i = 2, #args do
    local name, value = args[i]:match("^([^:]+):%s*(.*)$")
    if name then
      wrk.headers[name] = value
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local p = {}
  for _, q in ipairs({50, 90, 99, 99.9}) do
    p[#p + 1] = string.format('"%s": %d', tostring(q), latency:percentile(q))
  end
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "stdev": %.1f, "max": %d, "min": %d, %s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max, latency.min, table.concat(p, ", ")))
end
