-- wrk script: PUT 10 KiB files to unique paths under /wrk, with the body's
-- adler32 in a Digest header (the server verifies it before acknowledging).
-- Used by bench-wrk-put.sh; needs BALE_TOKEN, DIGEST in the environment.
local token = os.getenv("BALE_TOKEN")
local digest = os.getenv("DIGEST")
local body = string.rep("x", 10240)
local counter = 0
local threads = 0

setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

request = function()
  counter = counter + 1
  local path = string.format("/wrk/r%s-t%d-%d", os.getenv("ROUND"), tid, counter)
  return wrk.format("PUT", path, { ["Authorization"] = "Bearer " .. token, ["Digest"] = digest }, body)
end

response = function(status, headers, body)
  if status ~= 201 then
    error("PUT answered " .. status .. ": " .. body)
  end
end
