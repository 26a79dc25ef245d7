-- POST /bench/reference-write: one row inserted and committed, behind the same auth as a purchase.
package.path = "./?.lua;" .. package.path
local report = require("report")

local key = report.env("BENCH_KEY")
local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}

setup = report.number_thread
done = report.done

function request()
  return wrk.format("POST", "/bench/reference-write", headers, "{}")
end
