"""Target P14 computed from the shipped posterior; the shipped posterior's manifest."""

from __future__ import annotations

import pytest

from ciksim.evidence import Posterior, load_evidence


def test_shipped_posterior_loads_with_manifest():
    post = Posterior.load()
    m = post.manifest
    assert m["evidence_version"] == load_evidence().version
    for key in ("seed", "package_version", "pyabc_version", "evidence_hash", "model_hash",
                "generations", "evaluations", "ppc"):
        assert key in m, key
    assert post.effects == ["potency", "persistence_sd"]
    assert len(post.effect_draws(5, seed=0)) == 5


@pytest.mark.slow
def test_target_P14(check):
    from ciksim.targets.evidence import p14_calibrated_effect

    check(p14_calibrated_effect())
