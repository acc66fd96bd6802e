"""Materialized views: folds of the change stream into queryable state.

Module map:

- ``view``          ``View`` (the API: what a view consumes, how it folds,
                    how it is read, its fingerprint) and ``Change`` (its input)
- ``kinds``         built-in kinds: ``Count``/``Sum``/``Min``/``Max`` by a hash
                    ``Field`` or a ``KeyPart``, ``Index``, ``TopN``, ``Latest``
- ``state``         checkpoints: state + log position in one atomic file
- ``runner``        ``ViewRunner``: the fold loop, checkpoints, lag/rate/errors,
                    ``wait_for(offset)`` (read your writes)
- ``kafka_runner``  the same views as aiokafka consumer-group workers
- ``faust_adapter`` Fjord's topic and event codec as faust records (+ example agent)

The embedded host (images from the keyspace model, FJORD.VIEW, HTTP) sits
above store/, in triggers/viewhost.py and triggers/viewcommands.py.
"""

from .kinds import ALL, Count, Field, Index, KeyPart, Latest, Max, Min, Sum, TopN, Value
from .view import RESERVED_PREFIX, Change, View

__all__ = ["ALL", "Change", "Count", "Field", "Index", "KeyPart", "Latest", "Max", "Min", "RESERVED_PREFIX",
           "Sum", "TopN", "Value", "View"]
