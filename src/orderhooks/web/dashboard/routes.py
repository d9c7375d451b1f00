"""The dashboard's routes, all under /ui."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from orderhooks.web.dashboard import (
    actions,
    deliveries,
    event_types,
    orders,
    overview,
    portal,
    signin,
    usage,
    webhooks,
)
from orderhooks.web.dashboard.context import ASSET_HEADERS, STATIC_DIR, UI_PREFIX, Dashboard
from orderhooks.web.dashboard.guards import action, page


class DashboardAssets(StaticFiles):
    """The dashboard's static files, with `ASSET_HEADERS` on every answer (a 304 too); a
    missing file is the dashboard's 404 page, which has the pages' headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        """The file's answer, with the asset headers."""
        response = await super().get_response(path, scope)
        response.headers.update(ASSET_HEADERS)
        return response


def dashboard_routes(dash: Dashboard) -> list[BaseRoute]:
    """Every route under /ui."""
    ui = UI_PREFIX
    return [
        Route(
            ui,
            page(dash, overview.overview_page, anonymous=signin.sign_in_page(dash)),
            methods=["GET"],
        ),
        Route(f"{ui}/signin", signin.sign_in(dash), methods=["POST"]),
        Route(f"{ui}/signout", signin.sign_out(dash), methods=["POST"]),
        Route(f"{ui}/webhooks", page(dash, webhooks.list_page), methods=["GET"]),
        Route(f"{ui}/webhooks/{{webhook_id}}", page(dash, webhooks.detail_page), methods=["GET"]),
        Route(f"{ui}/deliveries", page(dash, deliveries.list_page), methods=["GET"]),
        Route(
            f"{ui}/deliveries/{{delivery_id}}", page(dash, deliveries.detail_page), methods=["GET"]
        ),
        Route(f"{ui}/orders", page(dash, orders.search_page), methods=["GET"]),
        Route(f"{ui}/orders/{{order_id}}", page(dash, orders.detail_page), methods=["GET"]),
        Route(f"{ui}/usage", page(dash, usage.usage_page), methods=["GET"]),
        Route(f"{ui}/event-types", page(dash, event_types.event_types_page), methods=["GET"]),
        Route(f"{ui}/portal/{{token}}", portal.portal_page(dash), methods=["GET"]),
        Route(f"{ui}/portal", portal.open_portal(dash), methods=["POST"]),
        *(
            Route(f"{ui}/webhooks/{{webhook_id}}/{name}", action(dash, handler), methods=["POST"])
            for name, handler in actions.WEBHOOK_ACTIONS.items()
        ),
        Route(
            f"{ui}/deliveries/{{delivery_id}}/retry",
            action(dash, actions.retry_delivery),
            methods=["POST"],
        ),
        Mount(f"{ui}/static", app=DashboardAssets(directory=STATIC_DIR), name="dashboard-static"),
    ]
