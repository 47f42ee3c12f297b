"""The ONNX importer, op by op on tiny graphs, against onnxruntime; and its error messages."""

import numpy as np
import pytest
from onnx import helper
import onnx_graphs as graphs
from onnx_graphs import init, model, ort_run, save

from dcim.golden.quant.onnx_import import SUPPORTED_OPS, import_model, load_model

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
    cases["clip_bounds_shape_1"] = ([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="a")],
                                    [init("lo", np.array([-0.2], np.float32)),
                                     init("hi", np.array([0.5], np.float32))], [5])
    cases["clip_constant_value_float"] = (
        [helper.make_node("Constant", [], ["hi"], name="k", value_float=0.25),
         helper.make_node("Clip", ["x", "", "hi"], ["y"], name="a")], [], [5])
    n, i = conv("c", "x", "t", r(4, 2, 3, 3))
    for shape in ((4, 1, 1), (1, 4, 1, 1), (1,)):
        cases[f"conv_add_bias_{'x'.join(map(str, shape))}"] = (
            [n, helper.make_node("Add", ["b", "t"], ["y"], name="bias")],
            i + [init("b", r(*shape))], [2, 5, 5])
    cases["gemm_add_bias_1xN"] = (
        [helper.make_node("Gemm", ["x", "w"], ["t"], name="g", transB=1),
         helper.make_node("Add", ["t", "b"], ["y"], name="bias")],
        [init("w", r(3, 6)), init("b", r(1, 3))], [6])
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


#: Graphs of tests/onnx_graphs.py: name -> (model, one sample's shape).
GRAPHS = {
    "identity": lambda: graphs.identity_model(rng),
    "shape_flatten_opset13": lambda: graphs.shape_flatten_model(rng),
    "shape_flatten_opset17_no_unsqueeze": lambda: graphs.shape_flatten_model(
        rng, opset=17, unsqueeze=False),
    "shape_flatten_fixed_batch": lambda: graphs.shape_flatten_model(rng, batch=4),
    "add_two_tensors": lambda: graphs.binary_model(rng, "Add"),
    "sub_two_tensors": lambda: graphs.binary_model(rng, "Sub"),
    "mul_two_tensors": lambda: graphs.binary_model(rng, "Mul"),
    "mul_broadcast": lambda: graphs.binary_model(rng, "Mul", broadcast=True),
    "sub_broadcast": lambda: graphs.binary_model(rng, "Sub", broadcast=True),
    "sub_mul_constants_folded": lambda: graphs.constant_fold_model(rng),
    "concat_channels": lambda: graphs.concat_model(rng),
    "concat_negative_axis": lambda: graphs.concat_model(rng, axis=-3),
    "concat_width": lambda: graphs.concat_model(rng, axis=3),
    "avgpool_pads_exclude_pad": lambda: graphs.avgpool_model(rng, count_include_pad=0),
    "avgpool_pads_include_pad": lambda: graphs.avgpool_model(rng, count_include_pad=1),
    "avgpool_asymmetric_pads_stride": lambda: graphs.avgpool_model(
        rng, kernel=(2, 3), strides=(2, 2), pads=(0, 1, 1, 2)),
    "conv_dilated": lambda: graphs.dilated_model(rng),
    "conv_dilated_strided_asymmetric": lambda: graphs.dilated_model(
        rng, dilations=(3, 2), strides=(2, 1), pads=(2, 0, 1, 3)),
    "pools_dilated": lambda: graphs.dilated_model(rng, pool=True, opset=19),
    "conv_grouped": lambda: graphs.grouped_model(rng),
    "conv_depthwise": lambda: graphs.grouped_model(rng, cin=4, cout=4, groups=4),
    "conv_depthwise_multiplier_2": lambda: graphs.grouped_model(rng, cin=3, cout=6, groups=3),
    **{f"host_{op.lower()}{'_' + '_'.join(map(str, attrs.values())) if attrs else ''}":
       (lambda op=op, attrs=attrs, opset=opset: graphs.activation_model(rng, op, opset, **attrs))
       for op, opset, attrs in graphs.ACTIVATIONS},
}


@pytest.mark.parametrize("case", sorted(GRAPHS))
def test_graph_matches_onnxruntime(case):
    m, in_shape = GRAPHS[case]()
    g = import_model(m)
    x = r(4, *in_shape)
    got = g.forward(x)[g.output_name]
    assert np.allclose(got, ort_run(m, x), rtol=1e-5, atol=1e-5)


def test_identity_and_shape_nodes_leave_no_layer():
    g = import_model(graphs.identity_model(rng)[0])
    assert [(n.kind, n.inputs, n.output) for n in g.nodes] == [
        ("conv", ("x",), "c"), ("relu", ("c",), "r"), ("flatten", ("r",), "f"),
        ("gemm", ("f",), "g")]
    assert g.output_name == "g"
    g = import_model(graphs.shape_flatten_model(rng)[0])
    assert [n.kind for n in g.nodes] == ["conv", "relu", "flatten", "gemm"]


def test_constant_subgraph_is_folded():
    """Constant -> Transpose and an Add of two initializers, evaluated at import."""
    w = r(3, 5)
    nodes = [helper.make_node("Constant", [], ["wt"], name="k", value=init("wv", w)),
             helper.make_node("Transpose", ["wt"], ["w"], name="tr"),
             helper.make_node("Add", ["b1", "b2"], ["b"], name="badd"),
             helper.make_node("MatMul", ["x", "w"], ["t"], name="mm"),
             helper.make_node("Add", ["t", "b"], ["y"], name="bias")]
    m = model(nodes, [init("b1", r(3)), init("b2", r(3))], [5])
    g = import_model(m)
    assert [(n.kind, n.name) for n in g.nodes] == [("gemm", "mm")]
    x = r(6, 5)
    assert np.allclose(g.forward(x)["y"], ort_run(m, x), rtol=1e-5, atol=1e-5)


def test_shape_computed_reshape_that_is_not_a_flatten():
    m, _ = graphs.shape_flatten_model(rng, opset=17)
    sh = next(i for i in m.graph.initializer if i.name == "m1")
    sh.CopyFrom(init("m1", np.array([3, -1], dtype=np.int64)))  # (batch, 3, 25)
    with pytest.raises(ValueError) as info:
        import_model(m)
    assert str(info.value) == ("Reshape node 'view': a shape computed from 'sh' that shape "
                               "inference resolves to (N, 3, ?) (only a flattening reshape to "
                               "(batch, -1)) is not supported")
    m, _ = graphs.shape_flatten_model(rng)
    m.graph.node[-1].input[0] = "f2"
    m.graph.node.insert(len(m.graph.node) - 1,  # a shape value used as data
                        helper.make_node("Add", ["f", "n1"], ["f2"], name="add"))
    with pytest.raises(ValueError) as info:
        import_model(m)
    assert str(info.value) == ("Add node 'add': input 'n1', computed from a tensor's shape (only "
                               "as Reshape's shape) is not supported")


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


def _node(op, ins, outs=("y",), name="n", **attrs):
    return helper.make_node(op, list(ins), list(outs), name=name, **attrs)


RELU_T = _node("Relu", ["x"], ["t"], name="a")
#: One case per way a node can be unsupported: (nodes, initializers, input shape, message).
UNSUPPORTED = {
    "foreign_domain": ([_node("Foo", ["x"], name="f", domain="com.example")], [], [2, 4, 4],
                       "unsupported ONNX op com.example.Foo in node 'f'"),
    "unknown_op": ([_node("LRN", ["x"], name="lrn1", size=3)], [], [2, 4, 4],
                   "unsupported ONNX op LRN in node 'lrn1'; supported: "
                   + ", ".join(sorted(SUPPORTED_OPS))),
    "conv_weight_not_constant": ([RELU_T, _node("Conv", ["x", "t"], name="c")], [], [2, 4, 4],
                                 "Conv node 'c': the weight ('t') must be a constant "
                                 "initializer"),
    "conv_1d": ([_node("Conv", ["x", "w"], name="c")], [init("w", r(2, 2, 3))], [2, 4],
                "Conv node 'c': a 1-D convolution (only 2-D) is not supported"),
    "conv_groups_not_dividing": ([_node("Conv", ["x", "w"], name="g", group=3)],
                                 [init("w", r(4, 1, 3, 3))], [3, 4, 4],
                                 "Conv node 'g': group=3 (it must divide the 4 output channels) "
                                 "is not supported"),
    "conv_auto_pad": ([_node("Conv", ["x", "w"], name="c", auto_pad="SAME_UPPER")],
                      [init("w", r(2, 2, 3, 3))], [2, 4, 4],
                      "Conv node 'c': auto_pad=SAME_UPPER (give explicit pads) is not "
                      "supported"),
    "gemm_transA": ([_node("Gemm", ["x", "w"], name="g", transA=1)], [init("w", r(6, 3))], [6],
                    "Gemm node 'g': transA=1 is not supported"),
    "gemm_c_per_row": ([_node("Gemm", ["x", "w", "c"], name="g", transB=1)],
                       [init("w", r(3, 6)), init("c", r(2, 3))], [6],
                       "Gemm node 'g': a C operand of shape (2, 3) (not per output channel; a "
                       "bias has shape (3,)) is not supported"),
    "matmul_3d": ([_node("MatMul", ["x", "w"], name="mm")], [init("w", r(2, 6, 3))], [6],
                  "MatMul node 'mm': a 3-D right operand is not supported"),
    "matmul_not_constant": ([RELU_T, _node("MatMul", ["x", "t"], name="mm")], [], [2, 4, 4],
                            "MatMul node 'mm': the right operand ('t') must be a constant "
                            "initializer"),
    "bn_training": ([_node("Conv", ["x", "w"], ["t"], name="c"),
                     _node("BatchNormalization", ["t", "s", "b", "m", "v"], name="bn",
                           training_mode=1)],
                    [init("w", r(2, 2, 1, 1)), init("s", r(2)), init("b", r(2)),
                     init("m", r(2)), init("v", np.ones(2))], [2, 4, 4],
                    "BatchNormalization node 'bn': training_mode=1 is not supported"),
    "bn_not_foldable": ([RELU_T, _node("BatchNormalization", ["t", "s", "b", "m", "v"],
                                       name="bn")],
                        [init("s", r(2)), init("b", r(2)), init("m", r(2)),
                         init("v", np.ones(2))], [2, 4, 4],
                        "BatchNormalization node 'bn': a BatchNormalization that does not "
                        "directly follow a Conv/Gemm/MatMul (it cannot be folded) is not "
                        "supported"),
    "add_constant_not_bias": ([RELU_T, _node("Add", ["t", "b"], name="add")],
                              [init("b", r(2))], [2],
                              "Add node 'add': adding a constant other than as the bias of a "
                              "Conv/Gemm/MatMul is not supported"),
    "sub_constant_not_bias": ([RELU_T, _node("Sub", ["t", "b"], name="sub")],
                              [init("b", r(2))], [2],
                              "Sub node 'sub': subtracting a constant other than from the output "
                              "of a Conv/Gemm/MatMul is not supported"),
    "sub_from_constant": ([_node("MatMul", ["x", "w"], ["t"], name="mm"),
                           _node("Sub", ["b", "t"], name="sub")],
                          [init("w", r(2, 3)), init("b", r(3))], [2],
                          "Sub node 'sub': subtracting the output of 'mm' from a constant is not "
                          "supported"),
    "mul_constant_not_scale": ([RELU_T, _node("Mul", ["t", "b"], name="mul")],
                               [init("b", r(2))], [2],
                               "Mul node 'mul': multiplying by a constant other than the output "
                               "of a Conv/Gemm/MatMul is not supported"),
    "mul_constant_not_per_channel": ([_node("Conv", ["x", "w"], ["t"], name="conv"),
                                      _node("Mul", ["t", "b"], name="mul")],
                                     [init("w", r(4, 2, 3, 3)), init("b", r(4, 1))], [2, 6, 6],
                                     "Mul node 'mul': multiplying 'conv' by a constant of shape "
                                     "(4, 1) (not per output channel; a bias has shape (4, 1, 1)) "
                                     "is not supported"),
    "add_1d_after_conv": ([_node("Conv", ["x", "w"], ["t"], name="conv"),
                           _node("Add", ["t", "b"], name="bias")],
                          [init("w", r(4, 2, 3, 3)), init("b", r(4))], [2, 6, 6],
                          "Add node 'bias': adding to 'conv' a constant of shape (4,) (not per "
                          "output channel; a bias has shape (4, 1, 1)) is not supported"),
    "clip_vector_bound": ([_node("Clip", ["x", "lo"], name="a")], [init("lo", np.zeros(2))], [2],
                          "Clip node 'a': min of shape (2,) (only a scalar or shape (1,)) is not "
                          "supported"),
    "clip_bound_not_constant": ([RELU_T, _node("Clip", ["x", "", "t"], name="c")], [], [2],
                                "Clip node 'c': max ('t') must be a constant initializer"),
    "maxpool_ceil": ([_node("MaxPool", ["x"], name="p", kernel_shape=[2, 2], ceil_mode=1)], [],
                     [2, 5, 5], "MaxPool node 'p': ceil_mode=1 is not supported"),
    "maxpool_1d": ([_node("MaxPool", ["x"], name="p", kernel_shape=[2])], [], [2, 5],
                   "MaxPool node 'p': a 1-D pooling window (only 2-D) is not supported"),
    "maxpool_indices": ([_node("MaxPool", ["x"], ["y", "i"], name="p", kernel_shape=[2, 2])], [],
                        [2, 4, 4], "MaxPool node 'p': the Indices output is not supported"),
    "maxpool_storage_order": ([_node("MaxPool", ["x"], name="p", kernel_shape=[2, 2],
                                     storage_order=1)], [], [2, 4, 4],
                              "MaxPool node 'p': storage_order=1 is not supported"),
    "flatten_axis": ([_node("Flatten", ["x"], name="f", axis=2)], [], [2, 4, 4],
                     "Flatten node 'f': axis=2 (only axis=1) is not supported"),
    "reshape_not_flat": ([_node("Reshape", ["x", "s"], name="rs")],
                         [init("s", np.array([0, 4, -1], dtype=np.int64))], [2, 4, 4],
                         "Reshape node 'rs': shape=[0, 4, -1] (only a flattening reshape to "
                         "(batch, -1)) is not supported"),
    "reshape_allowzero": ([_node("Reshape", ["x", "s"], name="rs", allowzero=1)],
                          [init("s", np.array([0, -1], dtype=np.int64))], [2, 4, 4],
                          "Reshape node 'rs': allowzero=1 with shape=[0, -1] is not supported"),
    "concat_constant": ([_node("Concat", ["x", "k"], name="cat", axis=1)],
                        [init("k", r(1, 2))], [2],
                        "Concat node 'cat': a constant input ('k'; only computed tensors) is not "
                        "supported"),
    "concat_batch_axis": ([RELU_T, _node("Concat", ["x", "t"], name="cat", axis=-2)], [], [2],
                          "Concat node 'cat': axis=-2 (the batch axis) is not supported"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_is_one_line_naming_node_op_and_attribute(case):
    nodes, inits, in_shape, message = UNSUPPORTED[case]
    m = model(nodes, inits, in_shape, check=False)
    with pytest.raises(ValueError) as info:
        import_model(m)
    assert str(info.value) == message


def test_model_level_errors():
    two_in = model([RELU_T], [], [2], check=False)
    two_in.graph.input.append(helper.make_tensor_value_info("z", 1, ["N", 2]))
    two_out = model([RELU_T, _node("Relu", ["t"], name="b")], [], [2], check=False)
    two_out.graph.output.append(helper.make_tensor_value_info("t", 1, ["N", 2]))
    flat_in = model([RELU_T], [], [], check=False)
    not_computed = model([RELU_T], [], [2], check=False)
    for m, message in ((two_in, "model must have exactly one data input, got 2: x, z"),
                       (two_out, "model must have exactly one output, got 2"),
                       (flat_in, "model input 'x' must have a batch dimension and at least one "
                                 "more, got rank 1"),
                       (not_computed, "model output 'y' is not computed from the input")):
        with pytest.raises(ValueError) as info:
            import_model(m)
        assert str(info.value) == message


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
