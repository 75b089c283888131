import pytest

from vjepa.schedules import ema_momentum, linear_warmup, warmup_cosine


def test_warmup_cosine_values():
    assert warmup_cosine(0, 100, 1.0, 10) == 0.0
    assert warmup_cosine(5, 100, 1.0, 10) == pytest.approx(0.5)
    assert warmup_cosine(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 1.0, 10, final=0.0) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 1.0, 10, final=0.1) == pytest.approx(0.1)


def test_ema_momentum_cosine_from_start_to_end():
    assert ema_momentum(0, 100) == pytest.approx(0.996)
    assert ema_momentum(50, 100) == pytest.approx(0.998)
    assert ema_momentum(100, 100) == pytest.approx(1.0)


def test_linear_warmup_window():
    assert linear_warmup(10, 0.5, 20, 40) == 0.0
    assert linear_warmup(30, 0.5, 20, 40) == pytest.approx(0.25)
    assert linear_warmup(50, 0.5, 20, 40) == 0.5
