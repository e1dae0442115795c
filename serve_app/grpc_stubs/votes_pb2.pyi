from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Vote(_message.Message):
    __slots__ = ("name", "album", "year", "rank", "vote_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALBUM_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    VOTE_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    album: str
    year: int
    rank: int
    vote_id: str
    def __init__(self, name: _Optional[str] = ..., album: _Optional[str] = ..., year: _Optional[int] = ..., rank: _Optional[int] = ..., vote_id: _Optional[str] = ...) -> None: ...

class CastReply(_message.Message):
    __slots__ = ("vote_id",)
    VOTE_ID_FIELD_NUMBER: _ClassVar[int]
    vote_id: str
    def __init__(self, vote_id: _Optional[str] = ...) -> None: ...

class VoteBatch(_message.Message):
    __slots__ = ("votes",)
    VOTES_FIELD_NUMBER: _ClassVar[int]
    votes: _containers.RepeatedCompositeFieldContainer[Vote]
    def __init__(self, votes: _Optional[_Iterable[_Union[Vote, _Mapping]]] = ...) -> None: ...

class BatchReply(_message.Message):
    __slots__ = ("accepted", "vote_ids")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    VOTE_IDS_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    vote_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted: _Optional[int] = ..., vote_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ResultsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Results(_message.Message):
    __slots__ = ("total", "by_band", "by_album", "by_year", "by_rank", "as_of")
    class ByBandEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByAlbumEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByYearEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ByRankEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BY_BAND_FIELD_NUMBER: _ClassVar[int]
    BY_ALBUM_FIELD_NUMBER: _ClassVar[int]
    BY_YEAR_FIELD_NUMBER: _ClassVar[int]
    BY_RANK_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    total: int
    by_band: _containers.ScalarMap[str, int]
    by_album: _containers.ScalarMap[str, int]
    by_year: _containers.ScalarMap[str, int]
    by_rank: _containers.ScalarMap[str, int]
    as_of: str
    def __init__(self, total: _Optional[int] = ..., by_band: _Optional[_Mapping[str, int]] = ..., by_album: _Optional[_Mapping[str, int]] = ..., by_year: _Optional[_Mapping[str, int]] = ..., by_rank: _Optional[_Mapping[str, int]] = ..., as_of: _Optional[str] = ...) -> None: ...
