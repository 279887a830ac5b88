-- wrk script for the DPoP run of benches/load/dpop: GET /api/whoami with one bound token and
-- a fresh proof on every request. PROOFS_FILE: the token on the first line, then one proof
-- per line, each good for one request. Each wrk thread takes its own share of the proofs;
-- requests are built once, in init, so wrk spends its time sending. A thread that runs out
-- starts over, and the replays answer 401 (the run then fails): make the pool large enough.
local requests = {}
local next_index = 0
local threads = 0

function setup(thread)
  thread:set("thread_index", threads)
  threads = threads + 1
end

function init(args)
  local path = os.getenv("PROOFS_FILE")
  local count = tonumber(os.getenv("THREADS") or "1")
  local token = nil
  local line_number = 0
  for line in io.lines(path) do
    if token == nil then
      token = line
    elseif line ~= "" then
      if line_number % count == thread_index then
        requests[#requests + 1] = wrk.format("GET", "/api/whoami", {
          ["Authorization"] = "DPoP " .. token,
          ["DPoP"] = line,
        })
      end
      line_number = line_number + 1
    end
  end
  if #requests == 0 then
    error("no proofs in " .. path)
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
