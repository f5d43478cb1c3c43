-- One fixed request, sent again and again: method, path, body and headers come
-- from the files the harness wrote ($BENCH_METHOD, $BENCH_BODY_FILE,
-- $BENCH_HEADERS_FILE). wrk formats it once, so the client costs almost nothing.
local common = dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

wrk.method = os.getenv("BENCH_METHOD") or "POST"
wrk.body = common.read_file(os.getenv("BENCH_BODY_FILE"))
common.apply_headers(os.getenv("BENCH_HEADERS_FILE"))

done = common.done
