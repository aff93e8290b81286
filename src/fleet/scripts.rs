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
