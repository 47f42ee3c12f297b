"""Prepare an ONNX graph for the importer, with onnx's own tools.

* Opset: a model older than opset 13 is converted with ``onnx.version_converter``.
* Shapes: ``onnx.shape_inference.infer_shapes`` with data propagation gives every tensor's
  shape (symbolic dimensions by name). It runs on a copy at opset 14 or newer, the first opset
  whose Reshape inference uses a shape computed from ``Shape`` (``Shape``-``Gather``-``Concat``
  chains, as torch exports ``x.view(x.size(0), -1)``).
* Identity nodes are removed: their consumers read the Identity's input.
* Constant subgraphs (nodes all of whose inputs are constants, Constant nodes included) are
  evaluated once by ``onnx.reference.ReferenceEvaluator`` into constants.
* Shape computations: a ``Shape`` node, and every node whose inputs are constants and outputs of
  shape computations, depend on the input's shape only (its batch size may be symbolic). They
  are dropped; their outputs may feed only Reshape's shape input, which the importer resolves
  from the inferred shapes.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from ..errors import InputError

__all__ = ["Prepared", "prepare"]

#: Shape of a tensor: per dimension an int, the name of a symbolic dimension, or None.
Shape = tuple[int | str | None, ...]


@dataclasses.dataclass
class Prepared:
    """An ONNX graph ready to be imported node by node.

    Attributes
    ----------
    model : onnx.ModelProto
        The model (converted to opset 13 if it was older).
    nodes : list of (str, onnx.NodeProto)
        The remaining nodes in order, with their names (``<OpType>_<index>`` where the model
        leaves one empty) and their inputs read through removed Identity nodes.
    consts : dict of str to numpy.ndarray
        Initializers and folded constants.
    shapes : dict of str to tuple
        Inferred shapes (batch dimension included), where onnx could infer them.
    from_shape : set of str
        Tensors computed from a tensor's shape (outputs of dropped shape computations).
    output : str
        The graph output (read through Identity nodes).
    """

    model: object
    nodes: list
    consts: dict[str, np.ndarray]
    shapes: dict[str, Shape]
    from_shape: set[str]
    output: str


def opset(model) -> int:
    """The model's default-domain opset (0 if it imports none)."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def infer_shapes(model) -> dict[str, Shape]:
    """Every tensor's shape as onnx infers it (data propagation on, at opset >= 14); tensors
    it cannot infer are left out (and all of them if inference fails)."""
    import onnx

    m = model
    if opset(m) < 14:
        try:
            m = onnx.version_converter.convert_version(m, 14)
        except Exception:  # the converter's own errors: infer at the model's opset
            m = model
    try:
        m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # inference is a help, not a check: the importer names what it needs
        return {}
    shapes = {}
    for vi in itertools.chain(m.graph.input, m.graph.value_info, m.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else
                                    (d.dim_param or None) for d in t.shape.dim)
    return shapes


def _default(node) -> bool:
    return node.domain in ("", "ai.onnx")


def _fold(nodes: list, consts: dict[str, np.ndarray], model) -> dict[str, np.ndarray]:
    """Evaluate constant-only ``nodes`` with onnx's reference evaluator."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    needed = {i for n in nodes for i in n.input if i in consts}
    outputs = [o for n in nodes for o in n.output if o]
    graph = helper.make_graph(nodes, "fold", [],
                              [helper.make_empty_tensor_value_info(o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(consts[i]), i)
                               for i in sorted(needed)])
    m = helper.make_model(graph, opset_imports=model.opset_import)
    m.ir_version = model.ir_version
    try:
        values = ReferenceEvaluator(m).run(None, {})
    except Exception as exc:
        raise InputError(f"constant subgraph ({', '.join(n.op_type for n in nodes[:4])}"
                         f"{', ...' if len(nodes) > 4 else ''}) could not be evaluated: "
                         f"{_first_line(exc)}") from None
    return {o: np.asarray(v) for o, v in zip(outputs, values)}


def prepare(model) -> Prepared:
    """Convert, infer shapes, remove Identity nodes, fold constants, drop shape computations.

    Raises
    ------
    ValueError
        The opset cannot be converted, or a constant subgraph cannot be evaluated.
    """
    import onnx
    from onnx import numpy_helper

    if opset(model) < 13:
        try:
            model = onnx.version_converter.convert_version(model, 13)
        except Exception as exc:
            raise InputError(f"model opset {opset(model)} could not be converted to opset 13 "
                             f"({_first_line(exc)})") from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    const = set(consts)
    alias: dict[str, str] = {}
    from_shape: set[str] = set()
    kept, fold = [], []
    for index, n in enumerate(g.node):
        ins = [alias.get(i, i) for i in n.input]
        if _default(n) and n.op_type == "Identity":
            alias[n.output[0]] = ins[0]
            continue
        if ins != list(n.input):
            copy = onnx.NodeProto()
            copy.CopyFrom(n)
            del copy.input[:]
            copy.input.extend(ins)
            n = copy
        real = [i for i in ins if i]
        outs = {o for o in n.output if o}
        if _default(n) and (n.op_type == "Shape" or (
                real and all(i in const or i in from_shape for i in real)
                and any(i in from_shape for i in real))):
            from_shape |= outs
        elif _default(n) and all(i in const for i in real):
            fold.append(n)
            const |= outs
        else:
            kept.append((n.name or f"{n.op_type}_{index}", n))
    if fold:
        consts.update(_fold(fold, consts, model))
    out = g.output[0].name if len(g.output) else ""
    return Prepared(model, kept, consts, infer_shapes(model), from_shape, alias.get(out, out))
