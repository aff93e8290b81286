//! The two server-side Lua scripts the fleet runs in Redis, and the key
//! names they use. Each runs atomically, so two nodes crossing a jail's
//! `maxretry` at the same moment still make exactly one ban.
//!
//! Keys (`P` is the fleet's prefix):
//! - `P:fail:JAIL:NET`: sorted set of failure times (score: seconds), one
//!   member per failure, trimmed to `findtime`, expiring after it;
//! - `P:ban:JAIL:NET`: the fleet-wide "banned" mark (value: the deciding
//!   node), expiring with the ban;
//! - `P:events`: the stream of bans, unbans and ignores;
//! - `P:members`: hash node → its addresses (comma separated);
//! - `P:epoch`: set once per Redis life; its absence means Redis came back
//!   empty and the nodes publish their active bans again.

/// Counts a batch of failures. `ARGV`: prefix, node, now, the number of
/// failures, then per jail: jail, maxretry, findtime, bantime (`-1`:
/// permanent), n, and n pairs of net, time. Returns the 1-based indices (in
/// ARGV order) of the failures that crossed `maxretry` fleet-wide and took
/// the ban mark (the caller decides the ban and publishes it).
///
/// Three calls per failure in the common case (ZADD, EXPIRE, ZCARD): the
/// window is trimmed, and the mark looked at, only when the count reaches
/// `maxretry`. A failure of an address whose mark is held (banned) is
/// counted, but its crossing finds the mark taken and only clears the count.
pub const COUNT: &str = r#"
local prefix, node, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local seq = redis.call('INCRBY', prefix .. ':seq', tonumber(ARGV[4]))
local crossed = {}
local i, k = 5, 0
while i <= #ARGV do
  local jail = ARGV[i]
  local maxretry, findtime, bantime = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local n = tonumber(ARGV[i + 4])
  i = i + 5
  local fails = prefix .. ':fail:' .. jail .. ':'
  local marks = prefix .. ':ban:' .. jail .. ':'
  for _ = 1, n do
    local net, t = ARGV[i], tonumber(ARGV[i + 1])
    i = i + 2
    k = k + 1
    local key = fails .. net
    redis.call('ZADD', key, t, node .. ':' .. (seq - k))
    redis.call('EXPIRE', key, findtime + 1)
    if redis.call('ZCARD', key) >= maxretry then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', now - findtime)
      if redis.call('ZCARD', key) >= maxretry then
        redis.call('DEL', key)
        local taken
        if bantime > 0 then
          taken = redis.call('SET', marks .. net, node, 'NX', 'EX', bantime)
        else
          taken = redis.call('SET', marks .. net, node, 'NX')
        end
        if taken then crossed[#crossed + 1] = k end
      end
    end
  end
end
return crossed
"#;

/// Publishes a batch of messages in one call. `KEYS`: the stream. `ARGV`:
/// node, then per message: mode, ttl, mark key, n keys to delete and the
/// keys, n fields and the field/value pairs. Modes: `claim` (a ban this
/// node's own counting decided: published only if no node holds the mark,
/// which it then takes), `ban` (published, the mark set or refreshed),
/// `plain` (published; an unban or ignore deletes the marks and counts it
/// names first). Returns how many were published (a claim that lost is
/// not). One call instead of one per message: Redis parses and runs one
/// script per batch.
pub const PUBLISH: &str = r#"
local node = ARGV[1]
local i, published = 2, 0
while i <= #ARGV do
  local mode, ttl, mark = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local ndel = tonumber(ARGV[i + 3])
  i = i + 4
  for _ = 1, ndel do
    redis.call('DEL', ARGV[i])
    i = i + 1
  end
  local nf = tonumber(ARGV[i])
  i = i + 1
  local ok = true
  if mode == 'claim' then
    if ttl > 0 then
      ok = redis.call('SET', mark, node, 'NX', 'EX', ttl)
    else
      ok = redis.call('SET', mark, node, 'NX')
    end
  elseif mode == 'ban' then
    if ttl > 0 then
      redis.call('SET', mark, node, 'EX', ttl)
    else
      redis.call('SET', mark, node)
    end
  end
  if ok then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', '100000', '*', unpack(ARGV, i, i + nf - 1))
    published = published + 1
  end
  i = i + nf
end
return published
"#;

pub fn events(prefix: &str) -> String {
    format!("{prefix}:events")
}

pub fn members(prefix: &str) -> String {
    format!("{prefix}:members")
}

pub fn epoch(prefix: &str) -> String {
    format!("{prefix}:epoch")
}

pub fn mark(prefix: &str, jail: &str, net: &str) -> String {
    format!("{prefix}:ban:{jail}:{net}")
}

pub fn failures(prefix: &str, jail: &str, net: &str) -> String {
    format!("{prefix}:fail:{jail}:{net}")
}
