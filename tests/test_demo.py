"""The bundled example behind the README's first command: it cleans the digits and says so."""

from __future__ import annotations

from labelclean._demo import main


def test_the_demo_finds_the_flipped_digits_and_prints_the_summary(capsys):
    result = main(noise=0.3, random_state=0)
    out = capsys.readouterr().out
    for line in ("estimated noise rate", "rows flagged", "labels right before/after", "test accuracy"):
        assert line in out
    assert result["f1"] > 0.8 and result["accuracy"] > 0.85
    before, after = (float(v) for v in out.split("labels right before/after")[1].split()[:3:2])
    assert after > before
