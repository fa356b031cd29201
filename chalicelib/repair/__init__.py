"""Repair: find what drifted in a cluster, then per item decide, and act or report."""
