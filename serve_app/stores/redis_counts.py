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
| votes:recent                 | list   | the 100 latest counted votes as JSON, newest pushed first |

One Lua script applies a whole batch: Redis runs it atomically, so the counters and the applied
offsets never disagree, and a replayed batch (offsets at or below the applied ones) changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from serve_app.domain.counting import CounterUpdate, Results

KEY_PREFIX = "votes:"
TOTAL = KEY_PREFIX + "total"
BY_BAND = KEY_PREFIX + "by_band"
BY_ALBUM = KEY_PREFIX + "by_album"
BY_YEAR = KEY_PREFIX + "by_year"
BY_RANK = KEY_PREFIX + "by_rank"
PER_SECOND = KEY_PREFIX + "per_second"
PER_SECOND_INDEX = KEY_PREFIX + "per_second:index"
APPLIED_OFFSETS = KEY_PREFIX + "applied_offsets"
# Latest votes, kept here, not sorted from the vote log: docs/decisions/0009-recent-votes-in-redis.md
RECENT = KEY_PREFIX + "recent"
RECENT_KEEP = 100
ALL_KEYS = (TOTAL, BY_BAND, BY_ALBUM, BY_YEAR, BY_RANK, PER_SECOND, PER_SECOND_INDEX,
            APPLIED_OFFSETS, RECENT)
RATE_WINDOW_S = 3600

# KEYS: total, by_band, by_album, by_year, by_rank, per_second, per_second:index, applied_offsets,
#       recent
# ARGV[1]: the topic; ARGV[2]: JSON list of [partition, offset, counts, band, album, year, rank,
#          second, recent-vote JSON]; ARGV[3]: the oldest second to keep in the rate series;
#          ARGV[4]: how many recent votes to keep.
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
      redis.call('LPUSH', KEYS[9], u[9])
    end
  end
end
for field, offset in pairs(highest) do
  redis.call('HSET', KEYS[8], field, offset)
end
if counted > 0 then
  redis.call('INCRBY', KEYS[1], counted)
  redis.call('LTRIM', KEYS[9], 0, tonumber(ARGV[4]) - 1)
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
        return int(self._apply(keys=list(ALL_KEYS), args=script_args(topic, updates, now)))


def script_args(topic: str, updates: Sequence[CounterUpdate], now: datetime | None = None) -> list[Any]:
    """ARGV of APPLY_BATCH_LUA for a batch (see the comment above the script)."""
    now_s = int((now or datetime.now(UTC)).timestamp())
    payload = json.dumps(
        [[u.partition, u.offset, u.counts, u.band, u.album, u.year, u.rank, u.second,
          recent_entry(u)] for u in updates],
        ensure_ascii=False,
    )
    return [topic, payload, now_s - RATE_WINDOW_S, RECENT_KEEP]


def recent_entry(update: CounterUpdate) -> str:
    """A vote as GET /votes/recent shows it, stored as JSON in votes:recent."""
    return json.dumps({"vote_id": update.vote_id, "name": update.band, "album": update.album,
                       "year": update.year, "rank": update.rank,
                       "received_at": update.received_at}, ensure_ascii=False)


def recent_from_reply(entries: Sequence[object], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` votes of votes:recent, ordered by received_at (pool order may differ)."""
    votes = [json.loads(_text(entry)) for entry in entries]
    votes.sort(key=lambda vote: vote["received_at"], reverse=True)
    return votes[:limit]


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
