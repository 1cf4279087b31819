"""Analysis of simulation results (summaries across donors, harvest planning)."""
