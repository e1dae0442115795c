"""Redis counters: live totals by band, album, year and rank, applied exactly once per record.

The keys are `ALL_KEYS` below; their types and contents are listed once, in
docs/observability.md ("Redis keys"), which Grafana's Contest dashboard reads
(tests/unit/deployments/dashboards/test_consistency.py checks that it names every key).

One Lua script applies a whole batch: Redis runs it atomically, so the counters and the applied
offsets never disagree, and a replayed batch (offsets at or below the applied ones) changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, overload

import orjson
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
# Latest votes, kept here, not sorted from the vote log:
# docs/decisions/0009-recent-votes-in-redis.md
RECENT = KEY_PREFIX + "recent"
RECENT_KEEP = 100
ALL_KEYS = (
    TOTAL,
    BY_BAND,
    BY_ALBUM,
    BY_YEAR,
    BY_RANK,
    PER_SECOND,
    PER_SECOND_INDEX,
    APPLIED_OFFSETS,
    RECENT,
)
RATE_WINDOW_S = 3600

# KEYS: total, by_band, by_album, by_year, by_rank, per_second, per_second:index, applied_offsets,
#       recent
# ARGV[1]: the topic; ARGV[2]: JSON list of CounterUpdate rows [partition, offset, counts, band,
#          album, year, rank, second, vote_id, received_at]; ARGV[3]: the oldest second to keep in
#          the rate series; ARGV[4]: how many recent votes to keep.
# Returns the number of votes counted.
# The counters are tallied in Lua first and written once per distinct band, album, year, rank and
# second, and only the last ARGV[4] counted votes are pushed to the recent list: the same end state
# as one write per vote, with ~30x fewer writes (docs/decisions/0014-pool-per-vote-cost.md).
APPLY_BATCH_LUA = """
local updates = cjson.decode(ARGV[2])
local keep = tonumber(ARGV[4])
local applied = {}
local highest = {}
local counted = 0
local tallies = {{}, {}, {}, {}, {}}  -- band, album, year, rank, second -> votes
local latest = {}
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
      for i = 1, 5 do
        local tally = tallies[i]
        local key = tostring(u[i + 3])
        tally[key] = (tally[key] or 0) + 1
      end
      latest[counted] = u
    end
  end
end
for field, offset in pairs(highest) do
  redis.call('HSET', KEYS[8], field, offset)
end
if counted > 0 then
  redis.call('INCRBY', KEYS[1], counted)
  for i = 1, 5 do
    for key, votes in pairs(tallies[i]) do
      redis.call('HINCRBY', KEYS[i + 1], key, votes)
    end
  end
  for second in pairs(tallies[5]) do
    redis.call('ZADD', KEYS[7], second, second)
  end
  local entries = {}
  for i = math.max(1, counted - keep + 1), counted do
    local u = latest[i]
    entries[#entries + 1] = '{"vote_id":' .. cjson.encode(u[9]) .. ',"name":' .. cjson.encode(u[4])
      .. ',"album":' .. cjson.encode(u[5]) .. ',"year":' .. u[6] .. ',"rank":' .. u[7]
      .. ',"received_at":' .. cjson.encode(u[10]) .. '}'
  end
  redis.call('LPUSH', KEYS[9], unpack(entries))
  redis.call('LTRIM', KEYS[9], 0, keep - 1)
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

    def apply(
        self, topic: str, updates: Sequence[CounterUpdate], now: datetime | None = None
    ) -> int:
        """Apply the updates atomically; returns how many votes were counted (0 for a replay)."""
        if not updates:
            return 0
        return int(self._apply(keys=list(ALL_KEYS), args=script_args(topic, updates, now)))

    def applied_marks(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """Partition -> the last offset the script applied of it (never applied: left out)."""
        if not partitions:
            return {}
        values = self._client.hmget(APPLIED_OFFSETS, [f"{topic}:{p}" for p in partitions])
        return {p: int(v) for p, v in zip(partitions, values, strict=True) if v is not None}


def script_args(
    topic: str, updates: Sequence[CounterUpdate], now: datetime | None = None
) -> list[Any]:
    """ARGV of APPLY_BATCH_LUA for a batch (see the comment above the script)."""
    now_s = int((now or datetime.now(UTC)).timestamp())
    payload = orjson.dumps([tuple(update) for update in updates])
    return [topic, payload, now_s - RATE_WINDOW_S, RECENT_KEEP]


def recent_from_reply(entries: Sequence[object], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` votes of votes:recent, ordered by received_at (pool order may differ)."""
    votes = [json.loads(_text(entry)) for entry in entries]
    votes.sort(key=lambda vote: vote["received_at"], reverse=True)
    return votes[:limit]


@overload
def read_results_pipeline(client: redis.Redis) -> redis.client.Pipeline: ...


@overload
def read_results_pipeline(client: redis.asyncio.Redis) -> redis.asyncio.client.Pipeline: ...


def read_results_pipeline(
    client: redis.Redis | redis.asyncio.Redis,
) -> redis.client.Pipeline | redis.asyncio.client.Pipeline:
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
        total=_count(total),
        by_band=counts(by_band),
        by_album=counts(by_album),
        by_year=counts(by_year),
        by_rank=counts(by_rank),
        as_of=as_of,
    )


def _count(reply: object) -> int:
    """votes:total's reply: its digits, or None before the first vote was counted."""
    assert reply is None or isinstance(reply, (bytes, str, int))
    return int(reply or 0)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
