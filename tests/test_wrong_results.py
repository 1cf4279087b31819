"""Regression tests for the silently wrong results of issue #17 (each failed before its fix)."""

from __future__ import annotations

import numpy as np

from ciksim.analysis.killing import Product


def test_product_median_composition_is_one_real_donor() -> None:
    """#1: the three shares' medians taken separately added up to more than 1 for small
    products (3-5 donors), failing trials after chunks were written."""
    product = Product("small", np.array([0.6, 0.5, 0.1]), np.array([0.35, 0.1, 0.5]),
                      np.array([0.05, 0.4, 0.4]))
    comp = product.median_composition()
    assert sum(comp.values()) <= 1.0
    donors = np.column_stack([product.f_cik, product.f_t, product.f_nk])
    assert any(np.allclose(row, [comp["f_cik"], comp["f_t"], comp["f_nk"]]) for row in donors)
    # the trial builds its product from that composition: it must be a valid product
    Product("trial product", comp["f_cik"], comp["f_t"], comp["f_nk"])
