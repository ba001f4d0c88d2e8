"""A customer-support agent: answers from a small knowledge base, looks up orders, issues refunds.

An ordinary Pydantic AI agent: nothing here knows about agenthost. Its model is chosen by
agenthost.toml (or, when that names none, by the environment: an Anthropic or OpenAI key, else
the built-in local model).
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry

KNOWLEDGE_BASE = {
    "shipping": "Standard shipping takes 3-5 business days; express takes 1-2. Orders ship from Tel Aviv.",
    "returns": "Items can be returned within 30 days of delivery for a full refund, unused and boxed.",
    "refunds": "Refunds go back to the original payment method within 5-10 business days of approval.",
    "warranty": "Electronics carry a 12-month manufacturer warranty covering defects, not accidents.",
    "hours": "Support is open Sunday to Thursday, 09:00-18:00 Israel time.",
}


class Order(BaseModel):
    order_id: str
    status: str
    item: str
    total_usd: float
    placed_on: date


ORDERS = {
    "1234": Order(
        order_id="1234",
        status="delayed in transit",
        item="wireless headphones",
        total_usd=89.9,
        placed_on=date(2026, 11, 10),
    ),
    "5678": Order(
        order_id="5678", status="delivered", item="usb-c charger", total_usd=24.5, placed_on=date(2026, 11, 2)
    ),
    "9012": Order(
        order_id="9012",
        status="processing",
        item="mechanical keyboard",
        total_usd=129.0,
        placed_on=date(2026, 11, 19),
    ),
}

REFUNDS: list[dict[str, object]] = []

support_agent = Agent(
    name="support",
    instructions=(
        "You are a friendly, concise customer-support agent for an electronics shop. "
        "Use search_kb for policy questions and get_order for anything about a specific order. "
        "Only call refund when the customer explicitly asks for a refund of a delivered order."
    ),
)


@support_agent.tool_plain
def search_kb(query: str) -> str:
    """Search the support knowledge base (shipping, returns, refunds, warranty, hours)."""
    words = query.lower()
    hits = [text for topic, text in KNOWLEDGE_BASE.items() if topic.rstrip("s") in words]
    return "\n".join(hits) or "No article matches; answer from general policy or ask a clarifying question."


@support_agent.tool_plain
def get_order(order_id: str) -> Order:
    """Look up an order by its id (digits only)."""
    order = ORDERS.get(order_id.strip().lstrip("#"))
    if order is None:
        raise ModelRetry(f"No order {order_id!r}; ask the customer to check the order number.")
    return order


@support_agent.tool_plain
def refund(order_id: str, reason: str) -> str:
    """Refund a delivered order in full. This moves money: call it only when the customer asks."""
    order = ORDERS.get(order_id.strip().lstrip("#"))
    if order is None:
        raise ModelRetry(f"No order {order_id!r}.")
    if order.status != "delivered":
        return f"Order {order.order_id} is {order.status}; only delivered orders can be refunded."
    REFUNDS.append({"order_id": order.order_id, "amount_usd": order.total_usd, "reason": reason})
    return f"Refund of ${order.total_usd:.2f} for order {order.order_id} approved."
