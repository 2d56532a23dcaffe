#!/usr/bin/env python3
"""Reference numbers for Tests/FleetTests/ForecastTests.swift (HoltForecaster).

statsmodels' Holt (additive trend, no damping) with fixed smoothing parameters, fitted without
optimisation. Two initialisations, both of which HoltForecaster reproduces exactly:
  - initialization_method="known": the given initial level and trend;
  - initialization_method="legacy-heuristic", which for a model without seasonality sets
    level = y[0], trend = y[1] - y[0] (statsmodels' `initial_values`; the same as its "simple"
    initialisation, which "estimated" also uses below 10 observations)
    (HoltForecaster.fit(_:alpha:beta:)).
In both, every observation (y[0] included) is then smoothed in:
  level[t] = a*y[t] + (1-a)*(level[t-1] + trend[t-1]);  trend[t] = b*(level[t]-level[t-1]) + (1-b)*trend[t-1]
and the h-step forecast is level[n] + h*trend[n].

Run (outside the repo's build):  python3 -m venv /tmp/venv-sm && /tmp/venv-sm/bin/pip install statsmodels
                                 /tmp/venv-sm/bin/python scripts/make-holt-reference.py
It prints Swift literals to paste into ForecastTests.swift.
"""
import numpy as np
import statsmodels
from statsmodels.tsa.holtwinters import Holt

# An arrival-rate ramp with noise (requests/s per 5 s interval), and a flat-then-drop series.
SERIES = {
    "ramp": [2.0, 2.4, 2.1, 3.0, 3.6, 3.4, 4.5, 5.1, 5.0, 6.2, 6.9, 7.4],
    "drop": [10.0, 10.5, 9.8, 10.2, 7.0, 4.1, 2.2, 1.0],
}
PARAMS = [(0.5, 0.3), (0.8, 0.2), (0.2, 0.9), (1.0, 1.0)]
KNOWN = (1.5, 0.25)  # initial level and trend for initialization_method="known"
STEPS = [1, 2, 6]


def swift(xs):
    return "[" + ", ".join(repr(float(x)) for x in xs) + "]"


print(f"// statsmodels {statsmodels.__version__}, numpy {np.__version__}")
for name, y in SERIES.items():
    for a, b in PARAMS:
        for method in ["legacy-heuristic", "known"]:
            kw = {"initialization_method": method}
            if method == "known":
                kw.update(initial_level=KNOWN[0], initial_trend=KNOWN[1])
            fit = Holt(np.array(y), exponential=False, **kw).fit(
                smoothing_level=a, smoothing_trend=b, optimized=False)
            start = "known" if method == "known" else "firstTwo"
            fc = [float(fit.forecast(h)[-1]) for h in STEPS]
            print(f'HoltCase(series: "{name}", alpha: {a}, beta: {b}, start: .{start}, '
                  f"level: {swift(fit.level)}, trend: {swift(fit.trend)}, forecasts: {swift(fc)}),")
