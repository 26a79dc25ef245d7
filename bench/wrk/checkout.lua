-- The checkout, one after another on each connection: POST /v1/quotes (the basket), POST /v1/holds (some points
-- of the member), POST /v1/purchases with "points_paid": {"hold_id"} and the same basket, then
-- POST /v1/holds/{hold_id}/capture. BENCH_CHECKOUT_MODE=purchase sends only the purchase, without points paid:
-- the reference, from the same script, basket, members and connections.
--
-- Run with as many threads as connections (wrk -tN -cN): each thread then drives one connection, so its
-- response() always answers the request() before it and the thread's state is that connection's checkout.
-- Every step is timed here (CLOCK_MONOTONIC through LuaJIT's ffi), from request() to response(); done()
-- prints them as one BENCH_STEPS line after report.lua's BENCH_JSON (bench/checkout.py reads both).
package.path = "./?.lua;" .. package.path
local report = require("report")
local ffi = require("ffi")

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + math.floor(tonumber(timespec.tv_nsec) / 1000)
end

local key = report.env("BENCH_KEY")
local run_id = report.env("BENCH_RUN_ID")
local members = tonumber(report.env("BENCH_MEMBERS"))
local member_prefix = report.env("BENCH_MEMBER_PREFIX", "B-")
local hold_points = tonumber(report.env("BENCH_HOLD_POINTS", "100"))
local mode = report.env("BENCH_CHECKOUT_MODE", "checkout")
local occurred_at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 60)
local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
local TOTAL = "42.50"
local LINES = '[{"sku":"A-1","category":"grocery","quantity":2,"unit_price":"10.00"},' ..
  '{"sku":"B-2","category":"household","quantity":1,"unit_price":"12.50"},' ..
  '{"sku":"C-3","category":"drinks","quantity":5,"unit_price":"2.00"}]'

local sequence
if mode == "checkout" then
  sequence = {"quote", "hold", "purchase", "capture"}
elseif mode == "purchase" then
  sequence = {"purchase"}
else
  error("bench: BENCH_CHECKOUT_MODE must be checkout or purchase, not " .. mode)
end

-- This thread's checkout: which step goes next, the one awaiting its answer, and the ids of the checkout.
local next_step = 1
local current = nil   -- index in sequence of the step in flight, nil when none is
local sent_at = 0
local started_at = 0
local counter = 0
local member, checkout_id

-- Read by done() through thread:get, so globals of the thread's state, and flat: wrk's copy between states
-- crashes on a table inside a table. latency_<step> and latency_checkout: microseconds, one per answer.
local SERIES = {"quote", "hold", "purchase", "capture", "checkout"}
local latencies = {}
for _, name in ipairs(SERIES) do
  latencies[name] = {}
  _G["latency_" .. name] = latencies[name]
end
completed = 0
failures = {}        -- "<step> <status>" -> count ("no-answer": the connection broke before an answer)
failure_samples = {} -- "<step> <status>" -> the start of one answer's body

local function fail(step, status, body)
  local what = step .. " " .. status
  failures[what] = (failures[what] or 0) + 1
  if failure_samples[what] == nil then failure_samples[what] = string.sub(body or "", 1, 200) end
end

local function basket(extra)
  return string.format(
    '{%s"member_id":"%s","store_id":"store-%d","channel":"pos","occurred_at":"%s","currency":"USD",' ..
    '"total":"%s","lines":%s%s}', extra.head or "", member, counter % 50, occurred_at, TOTAL, LINES,
    extra.tail or "")
end

local builders = {
  quote = function()
    return wrk.format("POST", "/v1/quotes", headers, basket({}))
  end,
  hold = function()
    return wrk.format("POST", "/v1/holds", headers, string.format(
      '{"hold_id":"%s","member_id":"%s","points":%d,"order_total":"%s","currency":"USD"}',
      checkout_id, member, hold_points, TOTAL))
  end,
  purchase = function()
    local tail = nil
    if mode == "checkout" then tail = string.format(',"points_paid":{"hold_id":"%s"}', checkout_id) end
    return wrk.format("POST", "/v1/purchases", headers,
      basket({head = string.format('"purchase_id":"%s",', checkout_id), tail = tail}))
  end,
  capture = function()
    return wrk.format("POST", "/v1/holds/" .. checkout_id .. "/capture", headers,
      string.format('{"purchase_id":"%s"}', checkout_id))
  end,
}

setup = function(thread)
  report.number_thread(thread)
  threads = threads or {}
  table.insert(threads, thread)
end

local probe = false
function init(args)
  math.randomseed(os.time() + thread_no * 7919)
  -- Before the run wrk calls the first thread's request() once, only to count the requests it returns.
  probe = thread_no == 0
end

function request()
  if probe then
    probe = false
    return wrk.format("POST", "/v1/quotes", headers, "{}")
  end
  if current ~= nil then
    -- A second request before the answer to the first: the connection broke (wrk reconnected), or the
    -- thread has more than one connection. Either way that checkout is lost; a new one starts.
    fail(sequence[current], "no-answer", "")
    next_step = 1
  end
  if next_step == 1 then
    counter = counter + 1
    member = member_prefix .. math.random(0, members - 1)
    checkout_id = string.format("%s-%d-%d", run_id, thread_no, counter)  -- the hold's and the purchase's id
    started_at = now_us()
  end
  current = next_step
  sent_at = now_us()
  return builders[sequence[current]]()
end

function response(status, headers, body)
  if current == nil then return end
  local now = now_us()
  local index = current
  local step = sequence[index]
  current = nil
  if status < 200 or status > 299 then
    fail(step, tostring(status), body)
    next_step = 1  -- this checkout stops here (a hold it left goes back when it expires)
    return
  end
  local samples = latencies[step]
  samples[#samples + 1] = now - sent_at
  if index == #sequence then
    completed = completed + 1
    if #sequence > 1 then
      samples = latencies.checkout
      samples[#samples + 1] = now - started_at
    end
    next_step = 1
  else
    next_step = index + 1
  end
end

local function json_string(text)
  return '"' .. string.gsub(string.gsub(text, '[%c"\\]', function(c)
    if c == '"' or c == "\\" then return "\\" .. c end
    return " "
  end), "[\128-\255]", "?") .. '"'
end

function done(summary, latency, requests)
  report.done(summary, latency, requests)
  local total = 0
  local merged = {}
  local merged_failures = {}
  local samples = {}
  local reported = {}  -- the mode's steps, then the whole checkout (empty for the reference)
  for _, name in ipairs(sequence) do reported[#reported + 1] = name end
  reported[#reported + 1] = "checkout"
  for _, name in ipairs(reported) do merged[name] = {} end
  for _, thread in ipairs(threads or {}) do
    total = total + thread:get("completed")
    for step, into in pairs(merged) do
      for _, v in ipairs(thread:get("latency_" .. step)) do into[#into + 1] = string.format("%d", v) end
    end
    for what, count in pairs(thread:get("failures")) do
      merged_failures[what] = (merged_failures[what] or 0) + count
    end
    for what, body in pairs(thread:get("failure_samples")) do
      if samples[what] == nil then samples[what] = body end
    end
  end
  local parts = {}
  for _, step in ipairs(reported) do
    parts[#parts + 1] = json_string(step) .. ": [" .. table.concat(merged[step], ",") .. "]"
  end
  local failed = {}
  local bodies = {}
  for what, count in pairs(merged_failures) do
    failed[#failed + 1] = json_string(what) .. ": " .. count
    bodies[#bodies + 1] = json_string(what) .. ": " .. json_string(samples[what] or "")
  end
  io.write(string.format('BENCH_STEPS {"mode": %s, "completed": %d, "latency_us": {%s}, "failures": {%s}, ' ..
    '"failure_samples": {%s}}\n', json_string(mode), total, table.concat(parts, ", "), table.concat(failed, ", "),
    table.concat(bodies, ", ")))
end
