-- POST /v1/purchases: unique purchase ids (run id, thread, counter), random seeded members, 3 lines.
package.path = "./?.lua;" .. package.path
local report = require("report")

local key = report.env("BENCH_KEY")
local run_id = report.env("BENCH_RUN_ID")
local members = tonumber(report.env("BENCH_MEMBERS"))
local member_prefix = report.env("BENCH_MEMBER_PREFIX", "B-")
local occurred_at = os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() - 60)
local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
local counter = 0

setup = report.number_thread
done = report.done

function init(args)
  math.randomseed(os.time() + thread_no * 7919)
end

function request()
  counter = counter + 1
  local member = member_prefix .. math.random(0, members - 1)
  local body = string.format(
    '{"purchase_id":"%s-%d-%d","member_id":"%s","store_id":"store-%d","channel":"pos",' ..
    '"occurred_at":"%s","currency":"USD","total":"42.50","lines":[' ..
    '{"sku":"A-1","category":"grocery","quantity":2,"unit_price":"10.00"},' ..
    '{"sku":"B-2","category":"household","quantity":1,"unit_price":"12.50"},' ..
    '{"sku":"C-3","category":"drinks","quantity":5,"unit_price":"2.00"}]}',
    run_id, thread_no, counter, member, counter % 50, occurred_at)
  return wrk.format("POST", "/v1/purchases", headers, body)
end
