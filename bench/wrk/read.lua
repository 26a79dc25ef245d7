-- GET BENCH_PATH with %s replaced by a random seeded member (or used as is, e.g. /healthz).
package.path = "./?.lua;" .. package.path
local report = require("report")

local key = report.env("BENCH_KEY")
local path = report.env("BENCH_PATH")
local members = tonumber(report.env("BENCH_MEMBERS", "1"))
local member_prefix = report.env("BENCH_MEMBER_PREFIX", "B-")
local headers = {["Authorization"] = "Bearer " .. key}

setup = report.number_thread
done = report.done

function init(args)
  math.randomseed(os.time() + thread_no * 7919)
end

function request()
  local target = path
  if string.find(path, "%%s") then
    target = string.format(path, member_prefix .. math.random(0, members - 1))
  end
  return wrk.format("GET", target, headers)
end
