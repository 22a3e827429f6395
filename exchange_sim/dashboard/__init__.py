"""The classroom dashboard: served by the simulator at ``/``, updated live over ``/dashboard/ws``.

``add_routes(app, node, admin_token=...)`` installs it into the API's aiohttp app;
``make_app(node)`` serves it alone.
"""

from .assets import ChartLibraryMissing, find_chart_js
from .server import DashboardHub, add_routes, make_app
from .state import DashboardState, margin_call_price

__all__ = ["ChartLibraryMissing", "DashboardHub", "DashboardState", "add_routes", "find_chart_js", "make_app",
           "margin_call_price"]
