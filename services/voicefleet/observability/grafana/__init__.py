"""Small typed builders for the Grafana 11 dashboard JSON model."""
