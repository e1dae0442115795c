"""Redis counters: live totals by band, album, year and rank, applied exactly once per record.

Key layout (Grafana's Redis data source reads these; keep in step with the README):

| key                          | type   | content                                                 |
| ---------------------------- | ------ | ------------------------------------------------------- |
| votes:total                  | string | number of counted votes                                 |
| votes:by_band                | hash   | band -> count                                           |
| votes:by_album               | hash   | album -> count                                          |
| votes:by_year                | hash   | year -> count                                           |
| votes:by_rank                | hash   | rank -> count                                           |
| votes:per_second             | hash   | epoch second of received_at -> count (last hour kept)   |
| votes:per_second:index       | zset   | the seconds present in votes:per_second, for pruning    |
| votes:applied_offsets        | hash   | "topic:partition" -> last Kafka offset applied          |

One Lua script applies a whole batch: Redis runs it atomically, so the counters and the applied
offsets never disagree, and a replayed batch (offsets at or below the applied ones) changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import redis

from serve_app.counting import CounterUpdate, Results

KEY_PREFIX = "votes:"
TOTAL = KEY_PREFIX + "total"
BY_BAND = KEY_PREFIX + "by_band"
BY_ALBUM = KEY_PREFIX + "by_album"
BY_YEAR = KEY_PREFIX + "by_year"
BY_RANK = KEY_PREFIX + "by_rank"
PER_SECOND = KEY_PREFIX + "per_second"
PER_SECOND_INDEX = KEY_PREFIX + "per_second:index"
APPLIED_OFFSETS = KEY_PREFIX + "applied_offsets"
ALL_KEYS = (TOTAL, BY_BAND, BY_ALBUM, BY_YEAR, BY_RANK, PER_SECOND, PER_SECOND_INDEX,
            APPLIED_OFFSETS)
RATE_WINDOW_S = 3600

# KEYS: total, by_band, by_album, by_year, by_rank, per_second, per_second:index, applied_offsets
# ARGV[1]: the topic; ARGV[2]: JSON list of [partition, offset, counts, band, album, year, rank,
#          second]; ARGV[3]: the oldest second to keep in the rate series.
# Returns the number of votes counted.
APPLY_BATCH_LUA = """
local updates = cjson.decode(ARGV[2])
local applied = {}
local highest = {}
local counted = 0
for _, u in ipairs(updates) do
  local field = ARGV[1] .. ':' .. u[1]
  if applied[field] == nil then
    applied[field] = tonumber(redis.call('HGET', KEYS[8], field) or '-1')
  end
  local offset = u[2]
  if offset > applied[field] then
    if highest[field] == nil or offset > highest[field] then highest[field] = offset end
    if u[3] then
      counted = counted + 1
      redis.call('HINCRBY', KEYS[2], u[4], 1)
      redis.call('HINCRBY', KEYS[3], u[5], 1)
      redis.call('HINCRBY', KEYS[4], tostring(u[6]), 1)
      redis.call('HINCRBY', KEYS[5], tostring(u[7]), 1)
      redis.call('HINCRBY', KEYS[6], tostring(u[8]), 1)
      redis.call('ZADD', KEYS[7], u[8], tostring(u[8]))
    end
  end
end
for field, offset in pairs(highest) do
  redis.call('HSET', KEYS[8], field, offset)
end
if counted > 0 then
  redis.call('INCRBY', KEYS[1], counted)
  local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', '(' .. ARGV[3])
  if #old > 0 then
    redis.call('HDEL', KEYS[6], unpack(old))
    redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. ARGV[3])
  end
end
return counted
"""


class RedisCounts:
    """The consumer's side: apply batches of counter updates."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._apply = client.register_script(APPLY_BATCH_LUA)

    def apply(self, topic: str, updates: Sequence[CounterUpdate], now: datetime | None = None) -> int:
        """Apply the updates atomically; returns how many votes were counted (0 for a replay)."""
        if not updates:
            return 0
        now_s = int((now or datetime.now(UTC)).timestamp())
        payload = json.dumps(
            [[u.partition, u.offset, u.counts, u.band, u.album, u.year, u.rank, u.second]
             for u in updates],
            ensure_ascii=False,
        )
        return int(self._apply(keys=list(ALL_KEYS), args=[topic, payload, now_s - RATE_WINDOW_S]))


def read_results_pipeline(client: redis.Redis | redis.asyncio.Redis) -> object:
    """A pipeline that reads every counter in one round trip (sync or asyncio client)."""
    pipe = client.pipeline(transaction=False)
    pipe.get(TOTAL)
    for key in (BY_BAND, BY_ALBUM, BY_YEAR, BY_RANK):
        pipe.hgetall(key)
    return pipe


def results_from_replies(replies: Sequence[object], as_of: datetime) -> Results:
    total, by_band, by_album, by_year, by_rank = replies

    def counts(mapping: object) -> dict[str, int]:
        assert isinstance(mapping, dict)
        return {_text(k): int(v) for k, v in mapping.items()}

    return Results(
        total=int(total or 0),  # type: ignore[call-overload]
        by_band=counts(by_band),
        by_album=counts(by_album),
        by_year=counts(by_year),
        by_rank=counts(by_rank),
        as_of=as_of,
    )


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
