"""Names the monitoring stack shares with the components whose pods it scrapes."""

NAMESPACE = "monitoring"
"""Prometheus, Grafana and the receiver on the main cluster; the agent on each app cluster."""
HOST_NAMESPACE = "monitoring-host"
"""Node exporters only: the one namespace whose pods need the host."""

PROMETHEUS_SERVER_LABELS = {
    "app.kubernetes.io/name": "prometheus",
    "app.kubernetes.io/component": "server",
}
"""Labels the prometheus chart gives its server pod."""
ALERTMANAGER_LABELS = {"app.kubernetes.io/name": "alertmanager"}
KUBE_STATE_METRICS_LABELS = {"app.kubernetes.io/name": "kube-state-metrics"}
GRAFANA_LABELS = {"app.kubernetes.io/name": "grafana"}

PROMETHEUS_SERVER_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
    "podSelector": {"matchLabels": PROMETHEUS_SERVER_LABELS},
}
"""The main cluster's Prometheus as a NetworkPolicy peer, for the namespaces it scrapes."""
