"""Import a float ONNX model into a graph of op objects with a numpy reference forward pass.

Opset 13+ (older opsets are converted first). Identity, constant subgraphs and shape
computations are resolved first (:mod:`dcim.golden.quant.onnx_prep`), then each node goes
through the builder of its op type (:mod:`dcim.golden.quant.onnx_builders`,
:data:`SUPPORTED_OPS`; docs/calibration.md lists what each accepts). Anything else is rejected
with a one-line ``ValueError`` naming the op, the node and the attribute.

The graph has one float input (batch first) and one output. This module is the float side of
``dcim calibrate``: weights are float64; nothing here is quantized. The op kinds are the
classes of :mod:`dcim.golden.quant.ops` and :mod:`dcim.golden.quant.matmul`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import InputError
from .onnx_builders import SUPPORTED_OPS, Builder
from .onnx_prep import prepare
from .ops import Op

__all__ = ["SUPPORTED_OPS", "FloatGraph", "import_model", "load_model", "read_onnx"]


@dataclasses.dataclass
class FloatGraph:
    """An imported model: nodes in execution order, one input and one output.

    Attributes
    ----------
    name : str
    input_name : str
    input_shape : tuple of (int or None)
        Shape of one sample (batch dimension removed); None for a symbolic dimension.
    output_name : str
    nodes : list of Op
        In execution order (:mod:`dcim.golden.quant.ops`, :mod:`dcim.golden.quant.matmul`).
    shapes : dict of str to tuple
        Per-sample shapes (batch dimension removed) of the tensors onnx shape inference could
        infer; a dimension is an int, a symbol's name or None.
    """

    name: str
    input_name: str
    input_shape: tuple[int | None, ...]
    output_name: str
    nodes: list[Op]
    shapes: dict[str, tuple] = dataclasses.field(default_factory=dict)

    def check_input(self, x: np.ndarray, what: str = "input") -> None:
        """Raise ValueError unless ``x`` is a batch of samples of the model's input shape."""
        want = self.input_shape
        if x.ndim != len(want) + 1 or any(w is not None and w != g
                                          for w, g in zip(want, x.shape[1:])):
            shown = ", ".join("?" if w is None else str(w) for w in want)
            raise InputError(f"{what} has samples of shape {tuple(x.shape[1:])}, the model "
                             f"{self.name!r} expects ({shown}) (input {self.input_name!r})")

    def forward(self, x: np.ndarray, keep_all: bool = False) -> dict[str, np.ndarray]:
        """Run the float64 reference.

        Returns
        -------
        dict
            ``{output_name: y}``, or every tensor by name if ``keep_all``.
        """
        self.check_input(x)
        env = {self.input_name: np.asarray(x, dtype=np.float64)}
        for node in self.nodes:
            env[node.output] = node.run_float([env[i] for i in node.inputs])
        if keep_all:
            return env
        return {self.output_name: env[self.output_name]}


# ----------------------------------------------------------------------------------------------
# Import
def load_model(path: str | Path) -> FloatGraph:
    """Read, check and import an ONNX model.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is not a valid ONNX model, or uses an unsupported op or attribute (the
        message names the op and the node).
    """
    path = Path(path)
    return import_model(read_onnx(path), path.stem)


def read_onnx(path: str | Path):
    """Read ``path`` as an ``onnx.ModelProto`` and check it with onnx's checker.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is not a valid ONNX model (the message gives the checker's first line).
    """
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, ValidationError, ...
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a valid ONNX model ({detail})") from None
    return model


def import_model(model, name: str = "model") -> FloatGraph:
    """Import an in-memory ``onnx.ModelProto`` (see :func:`load_model`)."""
    import onnx

    p = prepare(model)
    g = p.model.graph
    inputs = [i for i in g.input if i.name not in p.consts]
    if len(inputs) != 1:
        raise InputError(f"model must have exactly one data input, got {len(inputs)}: "
                         f"{', '.join(i.name for i in inputs)}")
    if len(g.output) != 1:
        raise InputError(f"model must have exactly one output, got {len(g.output)}")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    if len(dims) < 2:
        raise InputError(f"model input {inp.name!r} must have a batch dimension and at least "
                         f"one more, got rank {len(dims)}")
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                  for d in dims[1:])
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise InputError(f"model input {inp.name!r} must be float32")
    consumers: dict[str, int] = {}
    for _, n in p.nodes:
        for i in n.input:
            consumers[i] = consumers.get(i, 0) + 1
    consumers[p.output] = consumers.get(p.output, 0) + 1
    b = Builder(p, consumers)
    for node_name, n in p.nodes:
        b.add(n, node_name)
    known = {inp.name} | {node.output for node in b.nodes}
    if p.output not in known:
        raise InputError(f"model output {g.output[0].name!r} is not computed from the input")
    return FloatGraph(g.name or name, inp.name, shape, p.output, b.nodes,
                      {t: s[1:] for t, s in p.shapes.items() if s})
