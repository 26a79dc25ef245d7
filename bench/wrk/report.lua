-- Shared by the bench scripts: settings from the environment and one JSON line of results from done().
local report = {}

function report.env(name, default)
  local value = os.getenv(name)
  if value == nil or value == "" then
    if default == nil then error("bench: " .. name .. " is not set") end
    return default
  end
  return value
end

-- wrk counts responses with a status above 399 in errors.status; a 3xx would pass, so none is expected.
function report.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\nBENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "latency_p50_us": %d, ' ..
    '"latency_p99_us": %d, "latency_mean_us": %.1f, "latency_max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
end

-- Thread ids handed out in setup(), so ids stay unique across wrk's threads.
local next_thread = 0
function report.number_thread(thread)
  thread:set("thread_no", next_thread)
  next_thread = next_thread + 1
end

return report
