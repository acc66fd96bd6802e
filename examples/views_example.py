"""Example views: orders by status, revenue per status, an index of orders
by customer, a leaderboard and a recent-activity feed.

Run:  fjord serve --views examples/views_example.py

Orders are hashes ``order:<id>`` with fields ``status``, ``customer`` and
``amount``; players are hashes ``player:<name>`` with a ``score`` field.
"""

from streams.views import Count, Field, Index, KeyPart, Latest, Sum, TopN, View

orders_by_status = Count("orders_by_status", match="order:*", by=Field("status"), writeback=True)
revenue_by_status = Sum("revenue_by_status", match="order:*", by=Field("status"), value=Field("amount"))
orders_by_customer = Index("orders_by_customer", match="order:*", field="customer")
leaderboard = TopN("leaderboard", match="player:*", score=Field("score"), n=10, writeback=True)
activity = Latest("activity", match="order:*", by=KeyPart(0), n=20)


class BigOrders(View):
    """A custom view: how many orders ever went over 1000 (counted once per
    order, when its amount first crosses the line)."""

    name = "big_orders"
    match = (b"order:*",)

    def initial(self):
        return {"seen": set(), "count": 0}

    def apply(self, state, change):
        new = change.new
        if new is None or new["type"] != "hash":
            return None
        amount = dict(new["value"]).get("amount")
        key = change.event.key
        if amount is not None and float(amount) > 1000 and key not in state["seen"]:
            state["seen"].add(key)
            state["count"] += 1
        return None

    def get(self, state, group):
        return state["count"] if group == b"count" else None

    def groups(self, state):
        return [b"count"]


big_orders = BigOrders()
