"""`orderhooks simulate`: a realistic stream of orders posted to a running server.

Each simulated order is shaped like the Deliverect order model (docs/events.md, the order document)
and lives its life in scaled-down time: new (10), accepted (20), preparing (50), prepared (60),
ready for pickup (70), in delivery (80, delivery orders only), finalized (90); about
one in twenty is cancelled (110). Delivery orders get courier updates with coordinates
along the way. `orders` makes the payloads, `posting` sends them, `run` paces the
orders and shows the progress.
"""

from orderhooks.simulate.run import SimulationPlan, simulate

__all__ = ["SimulationPlan", "simulate"]
