"""The analyst layer: dbt models on the warehouse (see assets.py and dbt_project/)."""

from carbon_assets.analytics.assets import (
    analytics_assets,
    analytics_automation_sensor,
    analytics_selection,
    build_analytics,
    dbt_resource,
)

__all__ = [
    "analytics_assets",
    "analytics_automation_sensor",
    "analytics_selection",
    "build_analytics",
    "dbt_resource",
]
