// Package monitoring checks the alerts and the dashboard beyond what promtool's rule tests cover:
// the PrometheusRule carries the alert file unchanged, every alert has a runbook section, and every
// dashboard query parses (with promtool, when make test-alerts provides it).
package monitoring
