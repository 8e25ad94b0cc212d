"""Where a disagreement found by reference.oracle.check comes from.

- With layer outputs (answers `layer{i}/output`): the first layer whose output disagrees,
  its worst entry (sample m, neuron n), the pre-activation z there and, for an activation
  layer, where z lies (`describe_input`: the knot interval k, on a knot (within the kink
  window of reference.oracle._one_sided), outside the grid in an extrapolation piece), with the
  regions of all its failing entries.
- Without them, from the failing rows of outputs / input_jacobian: the regions
  (layer, neuron, region) whose samples best match the failing samples (Jaccard index
  |F & S| / |F | S|, F the failing samples, S those with a pre-activation in the region).
- Parameter gradients: the array and entry and what it is (neuron, input, grid point), and
  the layers whose gradients agree and disagree (the backward pass first goes wrong
  between the last layer that disagrees and the next one with parameters).
- Regularisers: the layer, the worst neuron and the ratio theirs / ours (a constant ratio
  points to a scaling such as the grid step).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reference.nn._network import nearest_index

if TYPE_CHECKING:
    from reference.nn._network import Network

TOP_SUSPECTS = 3
TOP_REGIONS = 8


def region_labels(layer, n: int, z: np.ndarray, on_kink: np.ndarray) -> np.ndarray:
    """Label of each pre-activation z (M,) of neuron n: 'interval k' (the piece the reference
    uses), 'on knot j' (on_kink (M,): within the kink window of one_sided.kink_masks of the
    interior grid point t_j), 'left extrapolation' / 'right extrapolation' (strictly
    outside the grid: an input one
    ulp beyond the last grid point is in the extrapolated end piece), for a layer with a
    grid (`grid_pieces`; splines: t_j, knot splines: 'point j'); otherwise by the sides of the
    layer's `region_breaks` b (ReLU family: b = 0): 'z < b_0', 'b_(k-1) < z < b_k',
    'z > b_last' (the right side at a break) and 'on the kink z = b_j'; '' for layers
    without regions (identity)."""
    pieces = layer.grid_pieces(n, z)
    if pieces is None:
        return _side_labels(layer.region_breaks(n), z, on_kink)
    grid, word = pieces[0], layer.grid_word
    labels = np.array([f"interval {k}" for k in pieces[1]], dtype=object)
    inner = grid[1:-1]
    if len(inner) and np.any(on_kink):
        j = nearest_index(inner, z)
        labels[on_kink] = [f"on {word} {k + 1}" for k in j[on_kink]]
    labels[z < grid[0]] = "left extrapolation"        # the grid ends are no kinks:
    labels[z > grid[-1]] = "right extrapolation"      # beyond them, the end pieces
    return labels


def _side_labels(breaks: np.ndarray, z: np.ndarray, on_kink: np.ndarray) -> np.ndarray:
    """region_labels by the sides of the sorted breaks (B,) for z (M,), on_kink (M,)."""
    if not len(breaks):
        return np.full(len(z), "", dtype=object)
    names = ([f"z < {breaks[0]:g}"]
             + [f"{a:g} < z < {b:g}" for a, b in zip(breaks[:-1], breaks[1:])]
             + [f"z > {breaks[-1]:g}"])
    labels = np.array(names, dtype=object)[np.searchsorted(breaks, z, side="right")]
    if np.any(on_kink):
        labels[on_kink] = [f"on the kink z = {breaks[j]:g}"
                           for j in nearest_index(breaks, z[on_kink])]
    return labels


def describe_input(layer, n: int, z: float, on_kink: bool) -> dict:
    """Where the pre-activation z of neuron n lies in an activation layer (on_kink: z is
    within the kink window): label (see region_labels), the piece index, on_knot,
    outside_grid, the grid or points' range and the interval's ends."""
    label = str(region_labels(layer, n, np.array([float(z)]), np.array([bool(on_kink)]))[0])
    info = {"pre_activation": float(z), "region": label}
    pieces = layer.grid_pieces(n, np.array([float(z)]))
    if pieces is not None:
        grid = pieces[0]
        k = int(np.clip(np.searchsorted(grid, z, side="right") - 1, 0, len(grid) - 2))
        if label.startswith("interval"):
            k = int(label.split()[1])
        info.update(interval=k, interval_ends=[float(grid[k]), float(grid[k + 1])],
                    on_knot=label.startswith("on "), outside_grid="extrapolation" in label,
                    grid_range=[float(grid[0]), float(grid[-1])], grid_size=len(grid))
        if label.startswith("on "):
            j = int(label.split()[-1])
            info.update(knot=j, knot_position=float(grid[j]))
    elif len(layer.region_breaks(n)):
        info["on_knot"] = label.startswith("on ")
    return info


def _violations(expected, got, rtol, row) -> np.ndarray:
    """Entrywise |got - expected| > atol S + rtol |expected| (row.atol_effective = atol S;
    NaN counts as a violation)."""
    got = np.asarray(got, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ~(np.abs(got - expected) <= row.atol_effective + rtol * np.abs(expected))


def localise_layers(net, used, answers, rows_by_key, caches, rtol, masks):
    """The first layer{i}/output that fails, its worst entry and the regions of its failing
    entries; None when every given layer output agrees."""
    failing = sorted((int(re.findall(r"\d+", k)[0]), k) for k, r in rows_by_key.items()
                     if re.fullmatch(r"layer\d+/output", k) and not r.passed)
    if not failing:
        return None
    i, key = failing[0]
    layer, row = net.layers[i], rows_by_key[key]
    result = {"source": "layer outputs", "layer": i, "layer_type": layer.kind}
    if row.worst_index is None or len(row.worst_index) != 2:
        result["summary"] = f"layer {i} ({layer.kind}): {key} {row.note}"
        return result
    m, n = row.worst_index
    theirs = np.asarray(answers[key], dtype=np.float64)
    result.update(sample=m, neuron=n, ours=float(used[key][m, n]), theirs=float(theirs[m, n]))
    before = f"layer{i - 1}/output"
    given = [k for k in rows_by_key if re.fullmatch(r"layer\d+/output", k)]
    inputs_note = ("its inputs are the network inputs" if i == 0 else
                   f"its inputs agree ({before} passes)" if before in rows_by_key else
                   f"{before} was not given: the fault is in layers "
                   f"{_previous_given(i, given)}..{i}")
    result["inputs"] = inputs_note
    if not layer.is_activation:
        result["summary"] = (f"first disagreement: layer {i} (dense), output neuron {n}, "
                             f"sample {m}: ours {result['ours']:.17g}, theirs "
                             f"{result['theirs']:.17g}; {inputs_note} (weight row {n}, "
                             f"bias {n})")
        return result
    z = caches[i][:, n] if not layer.is_identity else None
    if z is not None:
        where = describe_input(layer, n, z[m], masks[i][m, n])
        result["where"] = where
        if before in answers:
            result["theirs_pre_activation"] = float(np.asarray(answers[before])[m, n])
        bad = _violations(used[key], theirs, rtol, row)
        regions = Counter()
        for neuron in np.unique(np.nonzero(bad)[1]):
            labels = region_labels(layer, int(neuron), caches[i][:, neuron],
                                   masks[i][:, neuron])
            regions.update(f"neuron {neuron}: {lab}" for lab in labels[bad[:, neuron]])
        result["failing_entries"] = int(bad.sum())
        result["failing_regions"] = dict(regions.most_common(TOP_REGIONS))
        result["summary"] = (f"first disagreement: layer {i} ({layer.kind}), neuron {n}, "
                             f"sample {m}: pre-activation z = {z[m]:.17g} ({where['region']}"
                             + _grid_text(where) + f"); ours {result['ours']:.17g}, theirs "
                             f"{result['theirs']:.17g}; {inputs_note}")
    return result


def _previous_given(i, given) -> int:
    earlier = [int(re.findall(r"\d+", k)[0]) for k in given]
    earlier = [j for j in earlier if j < i]
    return max(earlier) + 1 if earlier else 0


def _grid_text(where: dict) -> str:
    if "interval_ends" not in where:
        return ""
    k, (a, b), (lo, hi) = where["interval"], where["interval_ends"], where["grid_range"]
    if where["outside_grid"]:
        text = f": beyond the grid [{lo:.6g}, {hi:.6g}], continuing piece {k} = [{a:.6g}, {b:.6g}]"
    else:
        text = f"; piece {k} = [{a:.6g}, {b:.6g}] of the grid [{lo:.6g}, {hi:.6g}]"
    if where.get("on_knot"):
        text += f"; on knot t_{where['knot']} = {where['knot_position']:.17g}"
    return text


def failing_samples(used, answers, rows_by_key, rtol, m: int) -> np.ndarray:
    """(M,) bool: the samples whose outputs or input_jacobian row disagree (after the
    one-sided rule)."""
    bad = np.zeros(m, dtype=bool)
    for key in ("outputs", "input_jacobian"):
        row = rows_by_key.get(key)
        if row is not None and not row.passed and key in used and row.compared:
            v = _violations(used[key], answers[key], rtol, row)
            bad |= v.reshape(m, -1).any(axis=1)
    return bad


def suspects(net, caches, bad: np.ndarray, masks: list) -> list:
    """The TOP_SUSPECTS regions (layer, neuron or 'any', region) whose samples best match
    the failing samples `bad` (M,), by the Jaccard index, earliest layer first on ties
    (masks: one_sided.kink_masks)."""
    found = []
    total = int(bad.sum())
    for i, layer in enumerate(net.layers):
        if not layer.is_activation or layer.is_identity:
            continue
        z = caches[i]
        per_layer = {}
        for n in range(z.shape[1]):
            labels = region_labels(layer, n, z[:, n], masks[i][:, n])
            outside = np.array(["extrapolation" in lab for lab in labels])
            groups = {lab: labels == lab for lab in set(labels)}
            if outside.any():
                groups["outside the grid"] = outside
            for lab, members in groups.items():
                found.append(_suspect(i, layer.kind, n, lab, members, bad, total))
                per_layer[lab] = per_layer.get(lab, False) | members
        for lab, members in per_layer.items():
            found.append(_suspect(i, layer.kind, "any", lab, members, bad, total))
    found.sort(key=lambda s: (-s["jaccard"], -s["failing_explained"], s["layer"],
                              s["neuron"] == "any"))
    unique, seen = [], set()
    for s in found:                       # 'any neuron' equal to one neuron's region: once
        signature = (s["layer"], s["region"], s.pop("members"))
        if signature not in seen:
            seen.add(signature)
            unique.append(s)
    return unique[:TOP_SUSPECTS]


def _suspect(i, kind, n, label, members, bad, total) -> dict:
    hit, extra = int((members & bad).sum()), int((members & ~bad).sum())
    return {"layer": i, "layer_type": kind, "neuron": n, "region": label,
            "failing_explained": hit, "failing": total, "passing_included": extra,
            "jaccard": hit / (total + extra) if total + extra else 0.0,
            "members": np.packbits(members).tobytes()}


def entry_meaning(net, own_name: str, entry) -> str:
    """What an entry of a parameter array is: 'neuron n of layer i, input j' and so on."""
    layer_index, param = own_name[len("layer"):].split(".", 1)
    i = int(layer_index)
    layer = net.layers[i]
    entry = tuple(int(e) for e in entry)
    return f"layer {i} ({layer.kind}), {layer.describe_entry(param, entry)}"


def localise_gradients(net, rows_by_key, own_to_file) -> dict | None:
    """Failing param_gradients / objective_gradients: array, entry, meaning, and which
    layers' gradients agree.  A wrong step of the backward pass at layer l spoils the
    gradients of every layer <= l with parameters; if some of them agree, the error is in
    the gradient formula of the failing arrays themselves."""
    file_to_own = {v: k for k, v in own_to_file.items()}
    result = {}
    for prefix in ("param_gradients", "objective_gradients"):
        items, status = [], {}
        for key, row in rows_by_key.items():
            if not key.startswith(prefix + "/") or key.split("/", 1)[1] not in file_to_own:
                continue
            own = file_to_own[key.split("/", 1)[1]]
            layer = int(own[len("layer"):].split(".")[0])
            status[layer] = status.get(layer, True) and row.passed
            if not row.passed and row.worst_index is not None:
                items.append({"key": key, "array": key.split("/", 1)[1], "entry":
                              list(row.worst_index), "meaning":
                              entry_meaning(net, own, row.worst_index), "note": row.note})
        bad = sorted(j for j, ok in status.items() if not ok)
        if not bad:
            continue
        good = sorted(j for j, ok in status.items() if ok)
        below = [j for j in status if j < bad[-1]]
        propagated = all(j in bad for j in below)
        text = f"{prefix}: disagree in layers {bad}, agree in layers {good}: "
        if propagated:
            after = [j for j in good if j > bad[-1]]
            text += ("the backward pass first goes wrong at layer " + str(bad[-1])
                     + (f" or between it and layer {after[0]}" if after else " or after it"))
        else:
            text += ("layers below agree, so the gradient passed backwards is right: the "
                     "error is in the failing arrays' own gradient")
        result[prefix] = {"items": items, "disagree": bad, "agree": good,
                          "propagated": propagated, "summary": text}
    return result or None


def localise_values(net, used, answers, rows_by_key) -> list:
    """Failing tv2/bv2/bound/objective rows: the layer, worst neuron and ratio theirs/ours."""
    items = []
    for key, row in rows_by_key.items():
        if row.passed or key not in used or not re.match(
                r"(tv2|bv2|lipschitz_bound(_slopes)?|objective)(/|$)", key) or not row.compared:
            continue
        ours, theirs = np.atleast_1d(used[key]), np.atleast_1d(np.asarray(answers[key], float))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = theirs / ours
        item = {"key": key}
        if key.startswith(("tv2/", "bv2/")):
            item.update(layer=int(key.split("/")[1]), neuron=int(row.worst_index[0]))
            item["summary"] = (f"{key}: layer {item['layer']} "
                               f"({net.layers[item['layer']].kind}), worst neuron "
                               f"{item['neuron']}")
        else:
            item["summary"] = f"{key}: ours {ours[0]:.10g}, theirs {theirs[0]:.10g}"
        finite = ratio[np.isfinite(ratio)]
        if len(finite) and np.allclose(finite, finite[0], rtol=1e-9, atol=0):
            item["ratio"] = float(finite[0])
            item["summary"] += ((": " if len(ratio) > 1 else " (")
                                + f"theirs = {finite[0]:.10g} x ours"
                                + ("" if len(ratio) > 1 else ")")
                                + (" on every neuron (a constant factor: a grid step or a "
                                   "scaling convention?)" if len(ratio) > 1 else ""))
        items.append(item)
    return items


def localise(net: Network, x: NDArray[np.float64], used: Mapping[str, NDArray],
             answers: Mapping[str, ArrayLike], rows: Sequence[Any],
             caches: Sequence[NDArray[np.float64]], own_to_file: Mapping[str, str], *,
             rtol: float, masks: list[NDArray[np.bool_] | None]) -> dict:
    """Where the disagreement of a failed check comes from.

    Parameters
    ----------
    net : Network
        The network checked.
    x : ndarray of shape (n_samples, n_in)
        The inputs.
    used : mapping of str to ndarray
        Key -> the reference's array each row was compared with (after the one-sided
        choices).
    answers : mapping of str to array_like
        Key -> the other implementation's array.
    rows : sequence of Row
        The rows of the check (``CheckReport.rows``); each key's absolute tolerance is its
        row's ``atol_effective``.
    caches : sequence of ndarray
        The input of each layer, (n_samples, N_i) (``Network.forward(keep_cache=True)``).
    own_to_file : mapping of str to str
        Own parameter name -> its name in the answers.
    rtol : float
        The relative tolerance of the check.
    masks : list of ndarray or None
        Per layer, None (dense) or the (n_samples, N_i) bool mask of pre-activations on a
        kink.

    Returns
    -------
    localisation : dict
        'summary', the lines of the human report, and the parts found: 'first_layer' (with
        layer{i}/output answers: the first layer whose output disagrees, its worst entry,
        the pre-activation there and where it lies, the regions of its failing entries);
        else 'failing_samples', 'samples', 'worst_sample', 'suspects' (the regions whose
        samples best match the failing samples, by Jaccard index ``|F & S| / |F | S|``) and
        'worst_sample_where'; 'gradients' (the failing gradient arrays, entry and meaning,
        and the layers whose gradients agree); 'values' (failing regulariser, bound and
        objective rows: the layer, worst neuron and ratio theirs / ours).

    See Also
    --------
    format_localisation : Its lines for the human report.
    """
    rows_by_key = {r.key: r for r in rows}
    result = {"summary": []}
    layers = localise_layers(net, used, answers, rows_by_key, caches, rtol, masks)
    bad = failing_samples(used, answers, rows_by_key, rtol, x.shape[0])
    if layers is not None:
        result["first_layer"] = layers
        result["summary"].append(layers["summary"])
        if layers.get("failing_regions"):
            result["summary"].append(
                f"  failing entries of layer {layers['layer']} by region ("
                f"{layers['failing_entries']} in all): "
                + ", ".join(f"{k}: {v}" for k, v in layers["failing_regions"].items()))
    elif bad.all():
        result.update(failing_samples=int(bad.sum()), samples=int(x.shape[0]))
        result["summary"].append(
            "every sample disagrees in outputs / input_jacobian: the failing rows cannot "
            "single out a layer or region; give layer{i}/output answers (evaluate --layers "
            "writes ours) to find the first layer that disagrees")
    elif bad.any():
        found = suspects(net, caches, bad, masks)
        worst = _worst_sample(rows_by_key)
        result.update(failing_samples=int(bad.sum()), samples=int(x.shape[0]),
                      worst_sample=worst, suspects=found)
        result["summary"].append(
            f"{int(bad.sum())} of {x.shape[0]} samples disagree in outputs / input_jacobian "
            f"(worst: sample {worst}); no layer{{i}}/output answers disagree or were given, so "
            "the layer is inferred from where the failing samples' pre-activations lie:")
        for s in found:
            result["summary"].append(
                f"  suspect: layer {s['layer']} ({s['layer_type']}), neuron {s['neuron']}, "
                f"{s['region']}: holds {s['failing_explained']} of the {s['failing']} "
                f"failing samples and {s['passing_included']} passing ones")
        if found and worst is not None and found[0]["neuron"] != "any":
            s = found[0]
            where = describe_input(net.layers[s["layer"]], s["neuron"],
                                   caches[s["layer"]][worst, s["neuron"]],
                                   masks[s["layer"]][worst, s["neuron"]])
            result["worst_sample_where"] = where
            result["summary"].append(
                f"  sample {worst} at layer {s['layer']}, neuron {s['neuron']}: "
                f"pre-activation z = {where['pre_activation']:.17g} ({where['region']}"
                + _grid_text(where) + ")")
        result["summary"].append("  give layer{i}/output answers (evaluate --layers writes "
                                 "ours) to find the first layer that disagrees exactly")
    forward_bad = [r.key for r in rows if not r.passed
                   and (r.key == "outputs" or re.fullmatch(r"layer\d+/output", r.key))]
    gradients = localise_gradients(net, rows_by_key, own_to_file)
    if gradients:
        result["gradients"] = gradients
    for prefix, part in (gradients or {}).items():
        data = rows_by_key.get("objective/data")
        if forward_bad:
            result["summary"].append(
                f"the forward pass already disagrees ({', '.join(forward_bad[:3])}): the "
                f"disagreeing {prefix} follow from it and are not localised separately")
        elif prefix == "objective_gradients" and data is not None and not data.passed:
            result["summary"].append(
                "objective/data already disagrees: the outputs or the loss differ, and the "
                "disagreeing objective_gradients follow from it (not localised separately); "
                "give outputs and layer{i}/output answers (evaluate --layers writes ours) "
                "to tell the forward pass from the loss")
        else:
            result["summary"].append(part["summary"])
            for item in part["items"]:
                result["summary"].append(f"  {item['key']} entry {tuple(item['entry'])}: "
                                         f"{item['meaning']}")
    values = localise_values(net, used, answers, rows_by_key)
    if values:
        result["values"] = values
        result["summary"].extend(v["summary"] for v in values)
    for r in rows:
        if not r.passed and r.compared == 0 and r.note:
            result["summary"].append(f"{r.key}: {r.note}")
    return result


def _worst_sample(rows_by_key):
    for key in ("outputs", "input_jacobian"):
        row = rows_by_key.get(key)
        if row is not None and not row.passed and row.worst_index:
            return int(row.worst_index[0])
    return None


def format_localisation(loc: Mapping) -> list[str]:
    """The lines of a localisation for the human report.

    Parameters
    ----------
    loc : mapping
        A localisation, as `localise` returns it.

    Returns
    -------
    lines : list of str
        'where:' then each line of ``loc['summary']``, indented by two spaces.

    Examples
    --------
    >>> from reference.oracle import format_localisation
    >>> format_localisation({"summary": ["first disagreement: layer 1"]})
    ['where:', '  first disagreement: layer 1']
    """
    return ["where:"] + [f"  {line}" for line in loc.get("summary", [])]
