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

/// Counts a batch of failures. `ARGV`: prefix, node, now, then per failure
/// jail, net, time, maxretry, findtime, bantime (`-1`: permanent). Returns
/// the 1-based indices of the failures that crossed `maxretry` fleet-wide
/// (and took the ban mark: the caller decides the ban and publishes it).
pub const COUNT: &str = r#"
local prefix, node, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local n = (#ARGV - 3) / 6
local seq = redis.call('INCRBY', prefix .. ':seq', n)
local crossed = {}
for k = 0, n - 1 do
  local i = 4 + k * 6
  local jail, net, t = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local maxretry, findtime, bantime = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  local mark = prefix .. ':ban:' .. jail .. ':' .. net
  if redis.call('EXISTS', mark) == 0 then
    local key = prefix .. ':fail:' .. jail .. ':' .. net
    redis.call('ZADD', key, t, node .. ':' .. (seq - k))
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - findtime)
    redis.call('EXPIRE', key, findtime + 1)
    if redis.call('ZCARD', key) >= maxretry then
      redis.call('DEL', key)
      if bantime > 0 then
        redis.call('SET', mark, node, 'EX', bantime)
      else
        redis.call('SET', mark, node)
      end
      crossed[#crossed + 1] = k + 1
    end
  end
end
return crossed
"#;

/// Publishes one message. `KEYS`: stream, ban mark (or the stream again
/// when there is none). `ARGV`: mode, node, ttl, then field/value pairs.
/// Modes: `claim` (a ban this node's own counting decided: published only
/// if no node holds the mark, which it then takes), `ban` (published, the
/// mark set or refreshed), `unban` (published, the mark and counts
/// dropped), `plain` (published). Returns the entry id, or false when a
/// claim lost.
pub const PUBLISH: &str = r#"
local mode, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
if mode == 'claim' then
  local ok
  if ttl > 0 then
    ok = redis.call('SET', KEYS[2], node, 'NX', 'EX', ttl)
  else
    ok = redis.call('SET', KEYS[2], node, 'NX')
  end
  if not ok then return false end
elseif mode == 'ban' then
  if ttl > 0 then
    redis.call('SET', KEYS[2], node, 'EX', ttl)
  else
    redis.call('SET', KEYS[2], node)
  end
elseif mode == 'unban' then
  redis.call('DEL', KEYS[2])
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', '100000', '*', unpack(fields))
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
