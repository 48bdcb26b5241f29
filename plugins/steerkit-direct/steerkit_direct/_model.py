"""The steering problem as solver-neutral conic data, rescaled, in one of two forms.

With D = s D₀ (s the decoder's RMS row norm) and δ = c y (c the size of δ that meets the hardest
margin with the single best feature), over y ≥ 0:

    lifted (x = [y; u], u = D₀ᵀy, d_sae + d_model variables, d_sae · d_model non-zeros):
        qp:   min (c/γ) 1ᵀy + (λ s² c²/2γ)‖u‖²   s.t.  D₀ᵀy − u = 0,  (Wᵢ/‖Wᵢ‖) u ≥ rᵢ/(s c ‖Wᵢ‖)
        socp: min 1ᵀy                          s.t.  the same,  ‖u‖ ≤ ε/(s c)
    gram (x = y, d_sae variables, a dense d_sae × d_sae Hessian):
        qp:   min (c/γ) 1ᵀy + (λ s² c²/2γ) yᵀD₀D₀ᵀy   s.t.  (Aᵢ/‖Aᵢ‖) y ≥ rᵢ/(c ‖Aᵢ‖)
        socp: min 1ᵀy   s.t.  the same,  ‖R y‖ ≤ ε/(s c)
    with D₀ᵀ = Q R (thin QR; R has min(d_sae, d_model) rows, and ‖D₀ᵀy‖ = ‖R y‖).

γ = max(c, λ s² c²) (qp) or c (socp), so y, the rows and the larger objective coefficient are of
order 1 whatever the decoder's scale. A factorisation of the lifted KKT system costs about
d_sae · d_model², of the gram one about d_sae³, but the gram matrix is dense and factorised at a
far higher flop rate: measured, gram is the faster up to d_sae ≈ 3–5 d_model (README).
Multipliers of the scaled rows map back as μᵢ = μ̂ᵢ γ / rowᵢ and ν = ν̂ γ / (s c).

Only numpy here at import time; scipy.sparse is imported when a model is built.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs
import numpy as np

from steerkit import Duals, ProblemKind, SteeringProblem

__all__ = ["ConicData", "Form", "build", "choose_form"]

Array = np.ndarray[Any, Any]


class Form(str, enum.Enum):
    """How ‖Dᵀδ‖ enters the model: through u = Dᵀδ (lifted) or the Gram matrix D Dᵀ (gram)."""

    LIFTED = "lifted"
    GRAM = "gram"


def choose_form(form: str, problem: SteeringProblem, gram_ratio: float) -> Form:
    """The form asked for, or for "auto" gram when d_sae ≤ gram_ratio · d_model (the measured
    crossover of the backend; the dense gram factorisation runs at a far higher flop rate)."""
    if form == "auto":
        return Form.GRAM if problem.d_sae <= gram_ratio * problem.d_model else Form.LIFTED
    try:
        return Form(form)
    except ValueError as e:
        raise ValueError(f"form must be 'auto', 'lifted' or 'gram', received {form!r}") from e


@attrs.frozen(eq=False)
class ConicData:
    """One scaled model: min ½xᵀPx + qᵀx over x = [y; aux] with

    eq x = 0 (rows_eq,), y ≥ 0 (d_sae,), linear x ≥ r / row (k,), ‖cone x‖ ≤ radius (SOCP).
    Matrices are scipy CSR; `p_upper` is the upper triangle of P in CSC.
    """

    form: Form
    kind: ProblemKind
    n: int  # d_sae: the first n entries of x are y
    n_vars: int
    p_upper: Any
    q: Array
    eq: Any | None
    linear: Any
    cone: Any | None
    radius: float
    s: float
    c: float
    gamma: float
    row: Array  # (k,): scaled row i is (Aᵢδ − rᵢ)/rowᵢ

    def scaled_rhs(self, rhs: Array) -> Array:
        """The right-hand sides of the scaled linear rows, (k,)."""
        return np.asarray(rhs, dtype=np.float64) / self.row

    def delta(self, x: Array) -> Array:
        """δ = c y, (d_sae,)."""
        return self.c * np.asarray(x[: self.n], dtype=np.float64)

    def duals(self, mu_hat: Array, nu_hat: float | None) -> Duals:
        """The problem's multipliers from the scaled model's (clipped at 0)."""
        mu = np.maximum(np.asarray(mu_hat, dtype=np.float64), 0.0) * self.gamma / self.row
        nu = None
        if self.kind is ProblemKind.SOCP:
            nu = max(0.0, float(nu_hat or 0.0)) * self.gamma / (self.s * self.c)
        return Duals(linear=mu, norm=nu)


def _positive(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 1.0


def _dense_csr(matrix: Array) -> Any:
    """A dense (rows, cols) block as CSR, every entry stored (no scan for zeros)."""
    import scipy.sparse as sp

    rows, cols = matrix.shape
    indptr = np.arange(0, rows * cols + 1, cols, dtype=np.int64)
    indices = np.tile(np.arange(cols, dtype=np.int32), rows)
    data = np.ascontiguousarray(matrix, dtype=np.float64).ravel()
    return sp.csr_matrix((data, indices, indptr), shape=(rows, cols))


def build(
    problem: SteeringProblem, form: Form, rhs_max: Array, *, min_norm: bool = False
) -> ConicData:
    """The scaled model of `problem` in `form`; c is chosen from rhs_max (k,), the largest r of
    the problems the model will serve.

    min_norm: instead, min ½‖Dᵀδ‖² over the same linear constraints (no ε), whose optimum is the
    smallest ε for which the SOCP is feasible.
    """
    import scipy.sparse as sp

    n, m, k = problem.d_sae, problem.d_model, problem.n_constraints
    decoder = np.asarray(problem.decoder, dtype=np.float64)
    a = problem.constraint_matrix
    s = _positive(float(np.sqrt(np.einsum("ij,ij->", decoder, decoder) / n)))
    best = a.max(axis=1)
    a_norm = np.linalg.norm(a, axis=1)
    a_norm = np.where(np.isfinite(a_norm) & (a_norm > 0), a_norm, 1.0)
    ratios = np.asarray(rhs_max, dtype=np.float64) / np.where(best > 0, best, a_norm)
    c = _positive(float(ratios.max(initial=0.0)))
    d0 = decoder / s

    kind = problem.kind
    if min_norm:
        quadratic, gamma, linear_cost = s * s * c * c, s * s * c * c, 0.0
    elif kind is ProblemKind.QP:
        assert problem.lam is not None
        quadratic = problem.lam * s * s * c * c
        gamma = max(c, quadratic)
        linear_cost = c / gamma
    else:
        quadratic, gamma, linear_cost = 0.0, c, 1.0
    weight = quadratic / gamma  # the coefficient of ½‖u‖² (or ½ yᵀD₀D₀ᵀy)
    has_cone = kind is ProblemKind.SOCP and not min_norm
    radius = float(problem.eps) / (s * c) if has_cone else 0.0  # type: ignore[arg-type]

    if form is Form.LIFTED:
        n_vars = n + m
        q = np.concatenate([np.full(n, linear_cost), np.zeros(m)])
        diag = np.concatenate([np.zeros(n), np.full(m, weight)])
        p_upper = sp.diags(diag, format="csc") if weight > 0 else sp.csc_matrix((n_vars, n_vars))
        p_upper.eliminate_zeros()
        eq = sp.hstack([_dense_csr(d0.T), -sp.identity(m, format="csr")], format="csr")
        w = np.asarray(problem.directions, dtype=np.float64)
        w_norm = np.linalg.norm(w, axis=1)
        w_norm = np.where(np.isfinite(w_norm) & (w_norm > 0), w_norm, 1.0)
        linear = sp.hstack([sp.csr_matrix((k, n)), _dense_csr(w / w_norm[:, None])], format="csr")
        row = s * c * w_norm
        cone = (
            sp.hstack([sp.csr_matrix((m, n)), sp.identity(m, format="csr")], format="csr")
            if has_cone
            else None
        )
    else:
        n_vars = n
        q = np.full(n, linear_cost)
        p_upper = (
            sp.csc_matrix(np.triu(weight * (d0 @ d0.T))) if weight > 0 else sp.csc_matrix((n, n))
        )
        eq = None
        linear = _dense_csr(a / a_norm[:, None])
        row = c * a_norm
        cone = _dense_csr(np.asarray(np.linalg.qr(d0.T, mode="r"))) if has_cone else None

    return ConicData(
        form=form,
        kind=kind,
        n=n,
        n_vars=n_vars,
        p_upper=p_upper,
        q=q,
        eq=eq,
        linear=linear,
        cone=cone,
        radius=radius,
        s=s,
        c=c,
        gamma=gamma,
        row=row,
    )
