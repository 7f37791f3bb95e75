"""The Lua scripts behind ``counters_redis.py``; each runs atomically inside Redis.

Key layout (one ``{lg}`` hash tag, so every key lands in one cluster slot):

    {lg}:epoch                  the current spend epoch (absent: unseeded)
    {lg}:seeding                the claim of the seeder allowed to install the next epoch
    {lg}:e:<E>:seed             hash writer -> highest ledger flush the seed of E included
    {lg}:e:<E>:s:<scope>        hash period field -> USD spent, and "r" -> USD reserved
    {lg}:e:<E>:r:<scope>        zset "<request>|<usd>" scored by lease expiry
    {lg}:e:<E>:scopes           set of the scopes of E (to expire them on a reset)
    {lg}:w:<key>                hash bucket index -> count (sliding window)
    {lg}:c:<key>                zset request -> lease expiry (concurrency slots)

Arguments come flattened in ARGV; the two per-request scripts (ADMIT, SETTLE)
take them as one JSON array of strings in ARGV[1] and answer one tab-joined
string, because packing and parsing dozens of RESP items per call was most of
the client's CPU cost. A refusal returns before any write, so an admission is
all or nothing. Windows and leases run on Redis's clock (``TIME``),
so replicas whose clocks drift apart still share one exact window.
"""

from __future__ import annotations

_COMMON = """
local function skey(epoch, scope) return '{lg}:e:' .. epoch .. ':s:' .. scope end
local function rkey(epoch, scope) return '{lg}:e:' .. epoch .. ':r:' .. scope end
local function prune(hkey, f)
  if string.len(f) < 3 then return end
  local p = string.sub(f, 1, 2)
  for _, k in ipairs(redis.call('HKEYS', hkey)) do
    if string.sub(k, 1, 2) == p and k < f then redis.call('HDEL', hkey, k) end
  end
end
-- charges: scope, amount, nfields, fields... ; returns the next ARGV index
local function charge(epoch, i, n, out)
  for _ = 1, n do
    local scope, amount, nf = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local hkey = skey(epoch, scope)
    for j = 1, nf do
      local f = ARGV[i + 2 + j]
      local fresh = redis.call('HEXISTS', hkey, f) == 0
      local v = redis.call('HINCRBYFLOAT', hkey, f, amount)
      if fresh then prune(hkey, f) end
      if out then out[#out + 1] = v end
    end
    redis.call('SADD', '{lg}:e:' .. epoch .. ':scopes', scope)
    i = i + 3 + nf
  end
  return i
end
"""

# Shadows the flat ARGV for the scripts that take one packed argument; _COMMON follows it so its
# functions read the unpacked table too.
_PACKED = "local ARGV = cjson.decode(ARGV[1])\n"

ADMIT = (
    _PACKED
    + _COMMON
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local req, reserve = ARGV[1], ARGV[3]
local lease = string.format('%.6f', now + tonumber(ARGV[2]))
local reserve_n = tonumber(reserve)
local nb, nw, nc, per = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local i = 8
local epoch = redis.call('GET', '{lg}:epoch')
if nb > 0 and not epoch then return 'unseeded' end
local scopes, seen = {}, {}
for b = 1, nb do
  local scope, f, limit = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local hkey = skey(epoch, scope)
  if not seen[scope] then
    seen[scope] = true
    scopes[#scopes + 1] = scope
    local zkey = rkey(epoch, scope)
    local stale = redis.call('ZRANGEBYSCORE', zkey, '-inf', now)
    if #stale > 0 then
      local freed = 0
      for _, m in ipairs(stale) do freed = freed + tonumber(string.match(m, '|(.*)$')) end
      redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
      if redis.call('ZCARD', zkey) == 0 then redis.call('HDEL', hkey, 'r')
      else redis.call('HINCRBYFLOAT', hkey, 'r', -freed) end
    end
  end
  local vals = redis.call('HMGET', hkey, f, 'r')
  local used = tonumber(vals[1] or '0') + tonumber(vals[2] or '0')
  if used + reserve_n > limit then return table.concat({'refused', 'budget', b, tostring(used), ''}, '\t') end
end
local placed = {}
for w = 1, nw do
  local key, window = ARGV[i], tonumber(ARGV[i + 1])
  local limit, amount = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  local hkey = '{lg}:w:' .. key
  local width = window / per
  local cur = math.floor(now / width)
  local oldest = cur - per
  local flat = redis.call('HGETALL', hkey)
  local total, live, dead = 0, {}, {}
  for j = 1, #flat, 2 do
    local idx, v = tonumber(flat[j]), tonumber(flat[j + 1])
    if idx < oldest then dead[#dead + 1] = flat[j] else total = total + v; live[#live + 1] = {idx, v} end
  end
  if #dead > 0 then redis.call('HDEL', hkey, unpack(dead)) end
  if total + amount > limit then
    table.sort(live, function(a, b) return a[1] < b[1] end)
    local need, retry = total + amount - limit, window
    for _, e in ipairs(live) do
      need = need - e[2]
      if need <= 0 then retry = (e[1] + per + 1) * width - now; break end
    end
    return table.concat({'refused', 'window', w, tostring(total), tostring(retry)}, '\t')
  end
  placed[w] = {hkey, string.format('%d', cur), amount, limit - total - amount, window + 2 * width}
end
local held = {}
for c = 1, nc do
  local key, limit = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local zkey = '{lg}:c:' .. key
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now)
  local n = redis.call('ZCARD', zkey)
  if n >= limit then return table.concat({'refused', 'concurrency', c, n, '1'}, '\t') end
  held[c] = zkey
end
if reserve_n > 0 then
  for _, scope in ipairs(scopes) do
    redis.call('HINCRBYFLOAT', skey(epoch, scope), 'r', reserve)
    redis.call('ZADD', rkey(epoch, scope), lease, req .. '|' .. reserve)
    redis.call('SADD', '{lg}:e:' .. epoch .. ':scopes', scope)
  end
end
local out = {'ok', epoch or ''}
for w = 1, nw do
  local p = placed[w]
  redis.call('HINCRBY', p[1], p[2], p[3])
  redis.call('PEXPIRE', p[1], math.ceil(p[5] * 1000))
  out[#out + 1] = p[2]
  out[#out + 1] = tostring(p[4])
end
for c = 1, nc do
  redis.call('ZADD', held[c], lease, req)
  redis.call('PEXPIREAT', held[c], math.ceil(tonumber(lease) * 1000) + 1000)
end
return table.concat(out, '\t')
"""
)

SETTLE = (
    _PACKED
    + _COMMON
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local req, tepoch, reserve = ARGV[1], ARGV[2], ARGV[3]
local nr, nch, nt = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local nfree, nc, per = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local i = 10
for _ = 1, nr do
  local scope = ARGV[i]
  i = i + 1
  local zkey = rkey(tepoch, scope)
  if redis.call('ZREM', zkey, req .. '|' .. reserve) == 1 then
    local hkey = skey(tepoch, scope)
    if redis.call('ZCARD', zkey) == 0 then redis.call('HDEL', hkey, 'r')
    else redis.call('HINCRBYFLOAT', hkey, 'r', '-' .. reserve) end
  end
end
local epoch = redis.call('GET', '{lg}:epoch')
local out = {epoch or ''}
if epoch then i = charge(epoch, i, nch, out)
else for _ = 1, nch do i = i + 3 + tonumber(ARGV[i + 2]) end end
-- token estimates out, real counts in: key, bucket, estimate
for _ = 1, nt do
  local hkey, bucket, est = '{lg}:w:' .. ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  if redis.call('HEXISTS', hkey, bucket) == 1 then redis.call('HINCRBY', hkey, bucket, -tonumber(est)) end
end
for _ = 1, nfree do
  local hkey, window, tokens = '{lg}:w:' .. ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  i = i + 3
  local width = window / per
  redis.call('HINCRBY', hkey, string.format('%d', math.floor(now / width)), tokens)
  redis.call('PEXPIRE', hkey, math.ceil((window + 2 * width) * 1000))
end
for _ = 1, nc do
  redis.call('ZREM', '{lg}:c:' .. ARGV[i], req)
  i = i + 1
end
return table.concat(out, '\t')
"""
)

READD = (
    _COMMON
    + """
local epoch = redis.call('GET', '{lg}:epoch')
if epoch ~= ARGV[1] then return 0 end
charge(epoch, 3, tonumber(ARGV[2]), nil)
return 1
"""
)

EPOCH = """
local epoch = redis.call('GET', '{lg}:epoch')
if not epoch then return {'', '0'} end
return {epoch, redis.call('HGET', '{lg}:e:' .. epoch .. ':seed', ARGV[1]) or '0'}
"""

# ARGV: token, epoch, nscopes, (scope, nfields, field, value ...)..., nwriters, (writer, seq)...
SEED = """
if redis.call('GET', '{lg}:seeding') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', '{lg}:epoch') == 1 then return 0 end
local epoch = ARGV[2]
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local scope, nf = ARGV[i], tonumber(ARGV[i + 1])
  local hkey = '{lg}:e:' .. epoch .. ':s:' .. scope
  redis.call('DEL', hkey)
  for j = 1, nf do redis.call('HSET', hkey, ARGV[i + 2 * j], ARGV[i + 2 * j + 1]) end
  redis.call('SADD', '{lg}:e:' .. epoch .. ':scopes', scope)
  i = i + 2 + 2 * nf
end
local nwriters = tonumber(ARGV[i])
i = i + 1
for _ = 1, nwriters do
  redis.call('HSET', '{lg}:e:' .. epoch .. ':seed', ARGV[i], ARGV[i + 1])
  i = i + 2
end
redis.call('SET', '{lg}:epoch', epoch)
redis.call('DEL', '{lg}:seeding')
return 1
"""

# Drop the epoch (if still current) so the next admission reseeds; its keys expire shortly
# after, so settles still in flight can release their reservations in the meantime.
RESET = """
if redis.call('GET', '{lg}:epoch') ~= ARGV[1] then return 0 end
local prefix = '{lg}:e:' .. ARGV[1]
for _, scope in ipairs(redis.call('SMEMBERS', prefix .. ':scopes')) do
  redis.call('EXPIRE', prefix .. ':s:' .. scope, 300)
  redis.call('EXPIRE', prefix .. ':r:' .. scope, 300)
end
redis.call('EXPIRE', prefix .. ':scopes', 300)
redis.call('EXPIRE', prefix .. ':seed', 300)
redis.call('DEL', '{lg}:epoch', '{lg}:seeding')
return 1
"""
