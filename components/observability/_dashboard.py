"""The fleet dashboard, built as code with grafana-foundation-sdk and provisioned into Grafana."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus as gp
from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as md

from components.observability import _queries as q

UID = "ocm-fleet"
TITLE = "ocm-fleet: the fleet"
DATASOURCE_UID = "prometheus"
"""The provisioned Prometheus data source (see the Grafana values in hub.py)."""
_DATASOURCE = md.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
_WIDTH = 24
_PANEL_W = 8
_PANEL_H = 7


def _target(query: q.Query) -> gp.Dataquery:
    return gp.Dataquery().expr(query.expr).legend_format(query.legend).ref_id("A")


def _panel(query: q.Query):
    # Up/down summaries read best as current values; everything else as a time series.
    builder = stat.Panel() if "(1 = up)" in query.title else timeseries.Panel()
    return (
        builder.title(query.title)
        .datasource(_DATASOURCE)
        .with_target(_target(query))
        .unit(query.unit)
        .height(_PANEL_H)
        .span(_PANEL_W)
    )


def build_dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model.

    A fleet summary (one series per cluster in every panel), then one row per cluster: the row
    repeats over the `cluster` variable, whose values are the servers of the public entry, so a
    cluster that joins the fleet gets its row without anyone editing the dashboard.
    """
    cluster = (
        gd.QueryVariable("cluster")
        .label("Cluster")
        .datasource(_DATASOURCE)
        .query(q.CLUSTER_VARIABLE_QUERY)
        .refresh(md.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(md.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
    )
    board = (
        gd.Dashboard(TITLE)
        .uid(UID)
        .tags(["ocm-fleet"])
        .time("now-3h", "now")
        .refresh("30s")
        .readonly()
        .with_variable(cluster)
        .with_row(gd.Row("Fleet summary"))
    )
    for query in q.SUMMARY:
        board = board.with_panel(_panel(query))
    board = board.with_row(gd.Row("Cluster $cluster").repeat("cluster"))
    for query in q.PER_CLUSTER:
        board = board.with_panel(_panel(query))
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def dashboard_json() -> str:
    return json.dumps(build_dashboard(), indent=2, sort_keys=True)


def panel_queries(model: dict[str, Any]) -> list[str]:
    """Every query expression in a dashboard model, rows' panels included."""
    exprs = []
    for panel in model.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            exprs += [t["expr"] for t in inner.get("targets", []) if "expr" in t]
    return exprs
