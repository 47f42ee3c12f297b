"""The ONNX importer, op by op on tiny graphs, against onnxruntime; and its error messages."""

import numpy as np
import pytest
from onnx import helper
from onnx_graphs import init, model, ort_run, save

from dcim.golden.quant.onnx_import import import_model, load_model

rng = np.random.default_rng(1)


def r(*shape):
    return rng.normal(size=shape).astype(np.float32)


def conv(name, inp, out, w, b=None, **attrs):
    ins = [inp, f"{name}.w"] + ([f"{name}.b"] if b is not None else [])
    inits = [init(f"{name}.w", w)] + ([init(f"{name}.b", b)] if b is not None else [])
    return helper.make_node("Conv", ins, [out], name=name, **attrs), inits


def bn_node(name, inp, out, c):
    inits = [init(f"{name}.s", rng.uniform(0.5, 2, c)), init(f"{name}.b", r(c)),
             init(f"{name}.m", r(c)), init(f"{name}.v", rng.uniform(0.5, 2, c))]
    node = helper.make_node("BatchNormalization",
                            [inp, f"{name}.s", f"{name}.b", f"{name}.m", f"{name}.v"], [out],
                            name=name, epsilon=1e-3)
    return node, inits


def _cases():
    cases = {}
    n, i = conv("c", "x", "y", r(4, 3, 3, 3), r(4), strides=[2, 2], pads=[1, 0, 2, 1],
                kernel_shape=[3, 3])
    cases["conv_stride_pads"] = ([n], i, [3, 7, 6])
    n, i = conv("c", "x", "y", r(5, 2, 1, 1))
    cases["conv_1x1_nobias"] = ([n], i, [2, 4, 4])
    n1, i1 = conv("c", "x", "t", r(4, 2, 3, 3), r(4), pads=[1, 1, 1, 1])
    n2, i2 = bn_node("bn", "t", "y", 4)
    cases["conv_bn"] = ([n1, n2], i1 + i2, [2, 5, 5])
    cases["gemm_transB_alpha_beta"] = (
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g", transB=1, alpha=0.5,
                          beta=2.0)], [init("w", r(3, 6)), init("b", r(3))], [6])
    cases["gemm_noTrans_scalar_c"] = (
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g")],
        [init("w", r(6, 3)), init("b", r(1))], [6])
    n2, i2 = bn_node("bn", "t", "y", 3)
    cases["gemm_bn"] = ([helper.make_node("Gemm", ["x", "w"], ["t"], name="g", transB=1), n2],
                        [init("w", r(3, 6))] + i2, [6])
    cases["matmul_add_bias"] = (
        [helper.make_node("MatMul", ["x", "w"], ["t"], name="mm"),
         helper.make_node("Add", ["t", "b"], ["y"], name="bias")],
        [init("w", r(6, 4)), init("b", r(4))], [6])
    cases["relu"] = ([helper.make_node("Relu", ["x"], ["y"], name="a")], [], [5])
    cases["clip_relu6"] = ([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="a")],
                           [init("lo", np.float32(0)), init("hi", np.float32(0.5))], [5])
    cases["add_residual"] = ([helper.make_node("Relu", ["x"], ["t"], name="a"),
                              helper.make_node("Add", ["t", "x"], ["y"], name="add")], [],
                             [2, 3, 3])
    cases["maxpool_pads"] = ([helper.make_node("MaxPool", ["x"], ["y"], name="p",
                                               kernel_shape=[3, 3], strides=[2, 2],
                                               pads=[1, 1, 1, 1])], [], [2, 6, 6])
    cases["averagepool"] = ([helper.make_node("AveragePool", ["x"], ["y"], name="p",
                                              kernel_shape=[2, 3], strides=[2, 1])], [],
                            [2, 6, 6])
    cases["gap_flatten"] = ([helper.make_node("GlobalAveragePool", ["x"], ["t"], name="p"),
                             helper.make_node("Flatten", ["t"], ["y"], name="f", axis=1)], [],
                            [3, 4, 4])
    cases["reshape"] = ([helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
                        [init("s", np.array([0, -1], dtype=np.int64))], [2, 3, 3])
    cases["softmax"] = ([helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)], [], [7])
    cases["constant_node"] = (
        [helper.make_node("Constant", [], ["w"], name="k", value=init("wv", r(5, 2))),
         helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [], [5])
    for case in ("gap_flatten", "reshape"):
        cases[case] += (2,)
    return cases


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case):
    nodes, inits, in_shape, *rank = CASES[case]
    m = model(nodes, inits, in_shape, *rank)
    g = import_model(m)
    x = r(4, *in_shape)
    got = g.forward(x)[g.output_name]
    want = ort_run(m, x)
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_batchnorm_is_folded():
    n1, i1 = conv("c", "x", "t", r(4, 2, 3, 3), r(4))
    n2, i2 = bn_node("bn", "t", "y", 4)
    g = import_model(model([n1, n2], i1 + i2, [2, 5, 5]))
    assert [(n.name, n.kind, n.output) for n in g.nodes] == [("c", "conv", "y")]


def test_old_opset_is_converted():
    m = model([helper.make_node("Clip", ["x"], ["y"], name="a", min=0.0, max=0.5)], [], [5],
              opset=10)
    g = import_model(m)
    x = r(3, 5)
    assert np.array_equal(g.forward(x)["y"], np.clip(x.astype(np.float64), 0, 0.5))


@pytest.mark.parametrize(
    ("nodes", "inits", "pattern"),
    [
        ([helper.make_node("Sigmoid", ["x"], ["y"], name="sig1")], [],
         r"^unsupported ONNX op Sigmoid in node 'sig1'; supported: Add, AveragePool, "),
        ([helper.make_node("Conv", ["x", "w"], ["y"], name="dw", group=2)],
         [init("w", r(2, 1, 3, 3))], r"^Conv node 'dw': groups=2 \(only groups=1\) is not "
                                     r"supported$"),
        ([helper.make_node("Relu", ["x"], ["t"], name="a"),
          helper.make_node("BatchNormalization", ["t", "s", "b", "m", "v"], ["y"], name="bn")],
         [init("s", r(2)), init("b", r(2)), init("m", r(2)), init("v", np.ones(2))],
         r"^BatchNormalization node 'bn': a BatchNormalization that does not directly follow "
         r"a Conv/Gemm/MatMul \(it cannot be folded\) is not supported$"),
        ([helper.make_node("Softmax", ["x"], ["t"], name="sm"),
          helper.make_node("Relu", ["t"], ["y"], name="a")], [],
         r"^Softmax node 'sm': a Softmax other than the final node is not supported$"),
        ([helper.make_node("Relu", ["x"], ["t"], name="a"),
          helper.make_node("MatMul", ["x", "t"], ["y"], name="mm")], [],
         r"^MatMul node 'mm': the right operand \('t'\) must be a constant initializer$"),
    ],
)
def test_unsupported_is_named(nodes, inits, pattern):
    m = model(nodes, inits, [2, 4, 4], check=False)
    with pytest.raises(ValueError, match=pattern):
        import_model(m)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^model file not found: .*nope\.onnx$"):
        load_model(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01 this is not a protobuf")
    with pytest.raises(ValueError, match=r"^.*bad\.onnx: not a valid ONNX model \(.+\)$"):
        load_model(bad)
    ok = save(model([helper.make_node("Relu", ["x"], ["y"], name="a")], [], [3]),
              tmp_path / "ok.onnx")
    assert load_model(ok).input_shape == (3,)


def test_input_shape_is_checked():
    g = import_model(model([helper.make_node("Relu", ["x"], ["y"], name="a")], [], [3, 4]))
    with pytest.raises(ValueError, match=r"^input has samples of shape \(4, 3\), the model "
                                         r"'t' expects \(3, 4\) \(input 'x'\)$"):
        g.forward(np.zeros((2, 4, 3)))
