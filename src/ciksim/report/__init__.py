"""Figures and reports. matplotlib is imported lazily, only when a figure is drawn."""
