-- wrk script for flood.sh: manifest requests with made-up runtime versions (255 bytes, the
-- longest accepted), current update ids and client ids, every other one to a made-up project
-- ref. PROJECT (environment) is the real project's ref.
local project = os.getenv("PROJECT")
local counter = 0

function setup(thread)
  thread:set("thread_id", counter)
  counter = counter + 1
end

function init(args)
  math.randomseed(os.time() + thread_id * 7919)
  n = 0
end

local function hex(digits)
  local out = {}
  for i = 1, digits do
    out[i] = string.format("%x", math.random(0, 15))
  end
  return table.concat(out)
end

function request()
  n = n + 1
  local ref = project
  if n % 2 == 1 then
    ref = "p_" .. string.format("%010d", math.random(0, 2147483647))
  end
  local platform = (n % 4 < 2) and "ios" or "android"
  local runtime_version = hex(255)
  local update_id = hex(8) .. "-0000-4000-8000-" .. hex(12)
  local headers = {
    ["accept"] = "multipart/mixed,application/expo+json,application/json",
    ["expo-platform"] = platform,
    ["expo-runtime-version"] = runtime_version,
    ["expo-protocol-version"] = "1",
    ["expo-current-update-id"] = update_id,
    ["eas-client-id"] = hex(32),
  }
  return wrk.format("GET", "/manifest/" .. ref, headers)
end
