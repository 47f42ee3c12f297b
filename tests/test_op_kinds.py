"""Op kinds are an enum (``OpKind``) whose values are the names reports print."""

import json

import pytest

from dcim.golden.quant import host, matmul, ops, pool
from dcim.golden.quant.ops import OpKind

#: The report vocabulary (docs/calibration.md's mapping tables): class -> (kind, layer kind).
NAMES = {
    matmul.Conv: ("conv", "matmul"), matmul.GroupConv: ("gconv", "matmul"),
    matmul.Gemm: ("gemm", "matmul"), ops.Relu: ("relu", "clamp"), ops.Clip: ("clip", "clamp"),
    ops.Add: ("add", "add"), ops.Sub: ("sub", "sub"), ops.Mul: ("mul", "mul"),
    ops.Concat: ("concat", "concat"), ops.Flatten: ("flatten", "flatten"),
    ops.Softmax: ("softmax", "softmax"), pool.MaxPool: ("maxpool", "maxpool"),
    pool.AvgPool: ("avgpool", "avgpool"), pool.GlobalAvgPool: ("gap", "avgpool"),
    host.Sigmoid: ("sigmoid", "host"), host.Silu: ("silu", "host"), host.Tanh: ("tanh", "host"),
    host.LeakyRelu: ("lrelu", "host"), host.HardSigmoid: ("hsigmoid", "host"),
    host.HardSwish: ("hswish", "host"), host.Gelu: ("gelu", "host"),
    host.HostSoftmax: ("softmax", "host"),
}


#: Base classes no graph node is built from: they have no kind of their own.
BASES = {ops.Clamp, ops.Sum, host.HostFloat, matmul.Matmul, pool.Pool}


def _subclasses(cls):
    return [c for s in cls.__subclasses__() for c in (s, *_subclasses(s))]


def test_every_op_class_is_named_or_a_base():
    classes = set(_subclasses(ops.Op))
    assert classes == set(NAMES) | BASES
    assert not any(hasattr(b, "kind") for b in BASES)


@pytest.mark.parametrize("cls", list(NAMES), ids=lambda c: c.__name__)
def test_kind_values_are_the_report_names(cls):
    assert type(cls.kind) is OpKind and type(cls.layer_kind) is OpKind
    assert (cls.kind, cls.layer_kind) == NAMES[cls]
    # reports and JSON print the plain name
    assert f"{cls.kind}+x" == f"{NAMES[cls][0]}+x"
    assert json.loads(json.dumps({"kind": cls.kind})) == {"kind": NAMES[cls][0]}
