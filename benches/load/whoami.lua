-- wrk script for GET /api/whoami (benches/load/run), or REQUEST_PATH (benches/gateway/run).
-- TOKENS_FILE: one access token per line. MODE=repeat sends the first token on every request
-- (a client-credentials client reusing its token); MODE=cycle sends the next token of the pool
-- on each request, round robin. Requests are built once, in init, so the load generator
-- spends its time sending, not formatting.
local requests = {}
local next_index = 0

function init(args)
  local path = os.getenv("TOKENS_FILE")
  local mode = os.getenv("MODE") or "repeat"
  local target = os.getenv("REQUEST_PATH") or "/api/whoami"
  for token in io.lines(path) do
    if token ~= "" then
      requests[#requests + 1] = wrk.format("GET", target, { ["Authorization"] = "Bearer " .. token })
      if mode == "repeat" then
        break
      end
    end
  end
  if #requests == 0 then
    error("no tokens in " .. tostring(path))
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end
