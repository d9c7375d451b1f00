"""Running a simulation: starting orders at the chosen rate, the live display, the summary."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import uuid
from dataclasses import dataclass

import aiohttp
from rich.console import Console
from rich.live import Live
from rich.table import Table

from orderhooks.clock import utc_now
from orderhooks.simulate.brokers import open_publisher
from orderhooks.simulate.orders import (
    CANCELLED,
    Site,
    account_ids,
    courier_body,
    make_sites,
    new_order_document,
    order_steps,
    status_body,
)
from orderhooks.simulate.posting import BatchPoster, DirectPoster, Poster, SimulationStats
from orderhooks.simulate.webhook import DemoWebhook, DemoWebhookError, create_demo_webhook
from orderhooks.sources.config import parse_source

REFRESH_PER_SECOND = 4
HTTP_TIMEOUT_SECONDS = 30
MAX_CONNECTIONS = 64


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """What to simulate: the options of `orderhooks simulate`."""

    url: str
    key: str
    rate: float = 5.0  # new orders per second
    duration: float = 60.0  # seconds of starting new orders; 0 = until Ctrl-C
    accounts: int = 3
    locations: int = 2  # per account
    seed: int = 0
    batch: bool = False
    speed: float = 1.0  # 2.0 lives each order twice as fast
    account_list: tuple[str, ...] = ()  # explicit accounts instead of generated ones
    to: str = ""  # a broker source URL: publish there instead of posting to `url`
    webhook: DemoWebhook | None = None  # a webhook to make on the accounts first

    def sites(self) -> tuple[Site, ...]:
        """The simulated stores of this plan."""
        accounts = self.account_list or account_ids(self.seed, self.accounts)
        return make_sites(self.seed, accounts, self.locations)


async def run_order(
    rng: random.Random, site: Site, poster: Poster, stats: SimulationStats, speed: float
) -> None:
    """Post one order, then each step of its life in order, at its pace."""
    order_id = uuid.uuid4().hex[:24]  # never derived from the seed: each run adds new orders
    document = new_order_document(rng, site, order_id, utc_now())
    stats.orders_started += 1
    if not await poster.send("order.new", order_id, document):
        stats.orders_abandoned += 1  # its updates would name an order the server lacks
        return
    last_status = document["status"]
    for step in order_steps(rng, document["orderType"]):
        await asyncio.sleep(step.delay / speed)
        now = utc_now()
        if step.event_type == "order.courier_update":
            body = courier_body(rng, step.status, document, site, now)
        else:
            body, last_status = status_body(step.status, now), step.status
        await poster.send(step.event_type, order_id, body)
    if last_status == CANCELLED:
        stats.orders_cancelled += 1
    else:
        stats.orders_finished += 1


async def start_orders(
    plan: SimulationPlan, poster: Poster, stats: SimulationStats, running: set[asyncio.Task[None]]
) -> None:
    """Start new orders at `plan.rate` per second (Poisson arrivals), forever."""
    rng = random.Random(plan.seed)
    sites = plan.sites()
    while True:
        # Each order draws from its own generator, so concurrent orders do not
        # disturb each other's sequence of random choices.
        order_rng = random.Random(rng.getrandbits(64))
        task = asyncio.create_task(
            run_order(order_rng, rng.choice(sites), poster, stats, plan.speed)
        )
        running.add(task)
        task.add_done_callback(running.discard)
        await asyncio.sleep(rng.expovariate(plan.rate))


def stats_table(stats: SimulationStats, title: str) -> Table:
    """The live display and the summary: one row per figure."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    elapsed = stats.elapsed
    rows = [
        ("elapsed", f"{elapsed:.1f} s"),
        ("orders started", str(stats.orders_started)),
        ("orders in progress", str(stats.in_progress)),
        ("orders finished", str(stats.orders_finished)),
        ("orders cancelled", str(stats.orders_cancelled)),
        ("orders abandoned", str(stats.orders_abandoned)),
        ("events posted", str(stats.events_posted)),
        ("requests ok / failed", f"{stats.requests_ok} / {stats.requests_failed}"),
        ("events/s (last 5 s)", f"{stats.recent_rate():.1f}"),
        ("events/s (overall)", f"{stats.events_posted / max(elapsed, 1e-3):.1f}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    if stats.last_error:
        table.add_row("last error", stats.last_error, style="red")
    return table


def print_plan(plan: SimulationPlan, console: Console) -> None:
    """Show where the orders will come from, so webhooks can be created for them."""
    target = parse_source(plan.to).display_url if plan.to else plan.url
    console.print(f"simulating {plan.rate:g} orders/s to {target} (seed {plan.seed})")
    for site in plan.sites():
        console.print(f"  account {site.account}  location {site.location}")
    console.file.flush()


async def simulate(plan: SimulationPlan, console: Console) -> int:
    """Run the simulation; the exit code is 1 when most requests failed."""
    print_plan(plan, console)
    stats = SimulationStats()
    running: set[asyncio.Task[None]] = set()
    stop_starting, abort = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:  # first Ctrl-C: let the orders finish; second: stop now
        (abort if stop_starting.is_set() else stop_starting).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    session = aiohttp.ClientSession(
        headers={"authorization": f"Bearer {plan.key}"},
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_SECONDS),
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
    )
    if plan.webhook is not None and not await _make_webhook(plan, plan.webhook, session, console):
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await session.close()
        return 1
    poster: Poster
    if plan.to:
        try:
            poster = await open_publisher(plan.to, stats)
        except BaseException:
            await session.close()
            raise
    else:
        poster = (BatchPoster if plan.batch else DirectPoster)(session, plan.url, stats)
    try:
        with Live(
            get_renderable=lambda: stats_table(stats, "orderhooks simulate"),
            console=console,
            refresh_per_second=REFRESH_PER_SECOND,
            transient=True,  # the summary below takes its place
        ):
            await _run_until_done(plan, poster, stats, running, stop_starting, abort)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await poster.close()
        await session.close()
    console.print(stats_table(stats, "summary"))
    console.file.flush()
    return 1 if stats.mostly_failed else 0


async def _run_until_done(
    plan: SimulationPlan,
    poster: Poster,
    stats: SimulationStats,
    running: set[asyncio.Task[None]],
    stop_starting: asyncio.Event,
    abort: asyncio.Event,
) -> None:
    starter = asyncio.create_task(start_orders(plan, poster, stats, running))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop_starting.wait(), timeout=plan.duration or None)
    starter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starter
    # Let the orders in progress live to the end of their life, unless told to stop now.
    aborted = asyncio.ensure_future(abort.wait())
    while running and not aborted.done():
        await asyncio.wait({*running, aborted}, return_when=asyncio.FIRST_COMPLETED)
    aborted.cancel()
    for task in list(running):
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def _make_webhook(
    plan: SimulationPlan, demo: DemoWebhook, session: aiohttp.ClientSession, console: Console
) -> bool:
    """Make the demo webhook and say so; False (and why) when the server refused."""
    accounts = sorted({site.account for site in plan.sites()})
    try:
        webhook_id = await create_demo_webhook(session, plan.url, demo, accounts)
    except (DemoWebhookError, aiohttp.ClientError) as exc:
        console.print(f"[red]could not make the webhook: {exc}[/red]")
        return False
    console.print(f"webhook {webhook_id} sends to {demo.url}")
    if demo.secret is None:
        console.print(f"  its secret: GET {plan.url.rstrip('/')}/v1/webhooks/{webhook_id}/secret")
    console.file.flush()
    return True
