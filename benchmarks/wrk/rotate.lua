-- Like post.lua, but each request goes to the next path of $BENCH_PATHS_FILE
-- (one per line), round robin: spawning a walker on one of many nodes
-- (POST /walker/toggle_todo/{node_id}).
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.body = common.read_file(os.getenv("BENCH_BODY_FILE"))
common.apply_headers(os.getenv("BENCH_HEADERS_FILE"))

local paths = common.read_lines(os.getenv("BENCH_PATHS_FILE"))
assert(#paths > 0, "BENCH_PATHS_FILE has no paths")
local next_index = 0

request = function()
  next_index = next_index % #paths + 1
  return wrk.format(nil, paths[next_index])
end

done = common.done
