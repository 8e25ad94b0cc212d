"""The same problem in other units (the metamorphic tests): a network, an answer's law,
a conformance case."""
from __future__ import annotations

import dataclasses

from reference.nn import Dense, KnotSplineActivation, LinearSpline, Network, SplineActivation


def rescale(net: Network, a: float, c: float) -> tuple[Network, dict]:
    """The same network in other units: inputs multiplied by ``a``, dense layer k (k = 1,
    2, ...) by ``c``.

    Parameters
    ----------
    net : Network
        The network to rescale.
    a : float
        Factor of the inputs.
    c : float
        Factor per dense layer.

    Returns
    -------
    net : Network
        The rescaled network.
    factors : dict of str to float
        ``"outputs"``: T, ``"inputs"``: a, ``"layer{i}/output"``: the factor of layer i's
        output, ``"layer{i}.{name}"``: the factor p of that parameter (its gradient scales
        by T / p).

    Notes
    -----
    W_k -> c W_k, b_k -> s_k b_k with s_k = a c^k the factor of layer k's pre-activations;
    every activation keeps the factor of its input (a spline's x_min, step and values, a
    knot-form layer's points and values, multiplied by it; ReLU, LeakyReLU, PReLU and
    identity are positively homogeneous).  Then f'(a x) = T f(x) with T = a c^L (L dense
    layers), the input Jacobian scales by T / a, TV2 and the slopes not at all, the
    Lipschitz constants (exact, layer-wise, Theorem 1 with the slopes) by T / a.  With a and
    c powers of 2 every one of these products is exact in float64.
    """
    layers: list[object]                     # the layers of the rescaled network, in order
    layers, factors, t, k = [], {}, a, 0
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Dense):
            k += 1
            s = a * c ** k
            bias = layer.params.get("bias")
            layers.append(Dense(layer.params["weight"] * (s / t),
                                None if bias is None else bias * s))
            factors[f"layer{i}.weight"], factors[f"layer{i}.bias"] = s / t, s
            t = s
        elif isinstance(layer, SplineActivation):
            spline = layer.spline
            layers.append(SplineActivation(LinearSpline(spline.coefficients * t,
                                                        spline.x_min * t, spline.step * t)))
            factors[f"layer{i}.coefficients"] = t
        elif isinstance(layer, KnotSplineActivation):
            layers.append(KnotSplineActivation([p * t for p in layer.points],
                                               [v * t for v in layer.values]))
            factors[f"layer{i}.points"] = factors[f"layer{i}.values"] = t
        else:
            layers.append(layer)
            factors.update({f"layer{i}.{key}": 1.0 for key in layer.params})
        factors[f"layer{i}/output"] = t
    factors["outputs"] = t
    factors["inputs"] = a
    return Network(layers), factors


def law(key: str, factors: dict, names: dict | None = None) -> float | None:
    """The factor by which the answer ``key`` scales under ``rescale``.

    Parameters
    ----------
    key : str
        An answer key of ``reference_answers`` (``"outputs"``, ``"input_jacobian"``,
        ``"param_gradients/<name>"``, ``"tv2/..."``, ``"lipschitz_exact/..."``, ...).
    factors : dict
        From ``rescale``.
    names : dict, optional
        Own parameter name (``"layer{i}.{name}"``) to the name used in the answers.

    Returns
    -------
    float or None
        None where there is no law (BV2 and what contains it, the objective terms).
    """
    T, a = factors["outputs"], factors["inputs"]
    own = {v: k for k, v in (names or {}).items()}
    if key in factors and "/" in key:
        return factors[key]
    if key == "outputs":
        return T
    if key.startswith("input_jacobian"):
        return T / a
    if key.startswith("param_gradients/"):
        name = key.split("/", 1)[1]
        return T / factors[own.get(name, name)]
    if key.startswith("tv2/"):
        return 1.0
    if key.startswith(("lipschitz_bound_slopes/", "lipschitz_layerwise/", "lipschitz_exact/")):
        return T / a
    if key == "on_kink":
        return 1.0
    return None


def rescale_case(case, a: float, c: float):
    """A conformance case in other units.

    Parameters
    ----------
    case : reference.conformance Case
        The case to rescale.
    a, c : float
        As ``rescale``.

    Returns
    -------
    case : Case
        The network and inputs by ``rescale``, the box of an exact case by a; a squared-loss
        solve: the targets by T and lam by T^2 (the same optimum, scaled); the objective
        cases: only the network and inputs.
    factors : dict
        From ``rescale``.
    """
    net, factors = rescale(case.net, a, c)
    parameters = dict(case.parameters)
    targets = case.targets
    if parameters.get("box") is not None:
        parameters["box"] = parameters["box"] * a
    if case.kind == "solve":
        T = factors["outputs"]
        targets = targets * T
        parameters["lam"] = parameters["lam"] * T ** 2
    return dataclasses.replace(case, net=net, inputs=case.inputs * a, targets=targets,
                               parameters=parameters), factors
