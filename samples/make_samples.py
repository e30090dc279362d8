#!/usr/bin/env python3
"""Build the bundled samples: samples/<name>/{model.onnx,input.json,expected.json}.

Deterministic (fixed seeds, no download). The outputs are committed, so neither the tool nor its
tests need Python; rerun this only to change a sample. Pinned versions (what made the committed files):

    pip install onnx==1.23.2 onnxruntime==1.32.0 numpy==2.4.6 scikit-learn==1.9.1

`expected.json` holds onnxruntime's float outputs for `input.json`: the reference the tests compare
tract's float run against.

The digits sample also gets calibration.jsonl and test.jsonl (images with labels, from the same
split as its model); `make_samples.py digits-data` rewrites just those two files.
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 13


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def save(name, graph, x, extra=None, root=HERE):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="zkreceipt-samples")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    out = os.path.join(root, name)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.onnx")
    onnx.save(model, path)
    xs = [np.asarray(v, dtype=np.float32) for v in (x if isinstance(x, list) else [x])]
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feed = {i.name: v for i, v in zip(sess.get_inputs(), xs)}
    res = sess.run(None, feed)
    outputs = [
        {"name": o.name, "shape": list(r.shape), "values": [float(v) for v in r.reshape(-1)]}
        for o, r in zip(sess.get_outputs(), res)
    ]
    with open(os.path.join(out, "input.json"), "w") as f:
        json.dump({"input_data": [[float(v) for v in x.reshape(-1)] for x in xs]}, f)
        f.write("\n")
    expected = {"source": f"onnxruntime {ort.__version__}", "outputs": outputs}
    if extra:
        expected.update(extra)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")
    print(name, [o["shape"] for o in outputs])


def mlp_graph(name, layers, in_dim, hidden_act):
    """Gemm layers with `hidden_act` between them; layers = [(W[in,out], b[out]), ...]."""
    nodes, inits = [], []
    cur = "input"
    for i, (w, b) in enumerate(layers):
        inits += [init(f"fc{i}.weight", w.T), init(f"fc{i}.bias", b)]
        out = "output" if i == len(layers) - 1 else f"fc{i}"
        nodes.append(helper.make_node("Gemm", [cur, f"fc{i}.weight", f"fc{i}.bias"], [out],
                                      name=f"fc{i}", transB=1))
        cur = out
        if i < len(layers) - 1:
            nodes.append(helper.make_node(hidden_act, [cur], [f"act{i}"], name=f"act{i}"))
            cur = f"act{i}"
    n_out = layers[-1][0].shape[1]
    return helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, in_dim])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n_out])],
        inits)


def digits_split():
    """The digits train/test split, shared by the model and its data files so they cannot drift."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()  # bundled with scikit-learn: no download
    x = data.data / 16.0
    return train_test_split(x, data.target, test_size=0.25, random_state=0)


def digits():
    from sklearn.neural_network import MLPClassifier

    xtr, xte, ytr, yte = digits_split()
    clf = MLPClassifier(hidden_layer_sizes=(32,), activation="relu", max_iter=600, random_state=0)
    clf.fit(xtr, ytr)
    acc = float(clf.score(xte, yte))
    layers = list(zip(clf.coefs_, clf.intercepts_))
    graph = mlp_graph("digits_mlp", layers, 64, "Relu")
    idx = 0
    save("digits", graph, xte[idx:idx + 1], {
        "true_label": int(yte[idx]),
        "test_image_index": idx,
        "classifier_test_accuracy": acc,
        "note": "scikit-learn MLPClassifier (64-32-10, ReLU) on the bundled 8x8 digits set; input is "
                "test image 0 scaled to [0,1]; outputs are logits (argmax = predicted digit)",
    })


def write_jsonl(path, xs, ys):
    # One {"input_data", "label"} object per line; pixels are k/16, so json's repr floats are exact.
    with open(path, "w") as f:
        for x, y in zip(xs, ys):
            f.write(json.dumps({"input_data": [[float(v) for v in x]], "label": int(y)}) + "\n")


def digits_data(root=HERE):
    """Data files for the digits sample, from the model's own split; needs no training and leaves
    model.onnx, input.json and expected.json alone.

    calibration.jsonl: 100 training images (seeded draw, no repeats), never seen as test data.
    test.jsonl: test images 0..9; line 1 is input.json's image.
    """
    xtr, xte, ytr, yte = digits_split()
    out = os.path.join(root, "digits")
    os.makedirs(out, exist_ok=True)
    pick = np.random.default_rng(0).choice(len(xtr), size=100, replace=False)
    write_jsonl(os.path.join(out, "calibration.jsonl"), xtr[pick], ytr[pick])
    write_jsonl(os.path.join(out, "test.jsonl"), xte[:10], yte[:10])
    print("digits data: calibration 100, test 10")


def mlp():
    rng = np.random.default_rng(7)
    w1 = rng.normal(0, np.sqrt(2 / 784), (784, 64))
    b1 = rng.normal(0, 0.05, 64)
    w2 = rng.normal(0, np.sqrt(2 / 64), (64, 10))
    b2 = rng.normal(0, 0.05, 10)
    save("mlp", mlp_graph("mlp_784_64_10", [(w1, b1), (w2, b2)], 784, "Relu"),
         rng.uniform(0, 1, (1, 784)))


def sigmoid():
    rng = np.random.default_rng(11)
    w1 = rng.normal(0, 0.6, (8, 8))
    b1 = rng.normal(0, 0.1, 8)
    w2 = rng.normal(0, 0.6, (8, 2))
    b2 = rng.normal(0, 0.1, 2)
    save("sigmoid", mlp_graph("mlp_8_8_2_sigmoid", [(w1, b1), (w2, b2)], 8, "Sigmoid"),
         rng.uniform(-1, 1, (1, 8)))


def cnn():
    rng = np.random.default_rng(5)
    wc = rng.normal(0, np.sqrt(2 / 9), (4, 1, 3, 3))
    bc = rng.normal(0, 0.05, 4)
    wf = rng.normal(0, np.sqrt(2 / 676), (10, 676))
    bf = rng.normal(0, 0.05, 10)
    nodes = [
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv"], name="conv",
                         kernel_shape=[3, 3], strides=[1, 1], pads=[0, 0, 0, 0]),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("AveragePool", ["relu"], ["pool"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["output"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "cnn_conv3x3x4_avgpool_fc10",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 10])],
        [init("conv.weight", wc), init("conv.bias", bc), init("fc.weight", wf), init("fc.bias", bf)])
    save("cnn", graph, rng.uniform(0, 1, (1, 1, 28, 28)))


TESTS = os.path.join(HERE, "..", "tests", "data")


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_models():
    """Models for the test suite (tests/data): every op the quantizer supports, several inputs
    and outputs, BatchNorm folding, and one model with unsupported ops."""
    rng = np.random.default_rng(3)
    # Conv -> BatchNorm (folded) -> LeakyRelu -> MaxPool (padded) -> AveragePool (padded, per-
    # element divisors) -> GlobalAveragePool -> Flatten -> MatMul const -> Tanh
    c = 3
    nodes = [
        helper.make_node("Conv", ["x", "cw"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], name="bn", epsilon=1e-3),
        helper.make_node("LeakyRelu", ["bn"], ["lr"], name="leaky", alpha=0.1),
        helper.make_node("MaxPool", ["lr"], ["mp"], name="maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["mp"], ["ap"], name="avgpool", kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 0, 0]),
        helper.make_node("GlobalAveragePool", ["ap"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "mw"], ["mm"], name="matmul"),
        helper.make_node("Tanh", ["mm"], ["y"], name="tanh"),
    ]
    inits = [
        init("cw", rng.normal(0, 0.5, (c, 2, 3, 3))),
        init("g", rng.uniform(0.5, 1.5, c)), init("b", rng.normal(0, 0.1, c)),
        init("m", rng.normal(0, 0.1, c)), init("v", rng.uniform(0.5, 1.5, c)),
        init("mw", rng.normal(0, 0.8, (c, 4))),
    ]
    g = helper.make_graph(nodes, "conv_bn_pools", [vi("x", [1, 2, 7, 7])], [vi("y", [1, 4])], inits)
    save("conv_bn_pools", g, rng.uniform(-1, 1, (1, 2, 7, 7)), root=TESTS)

    # Two inputs, two outputs: element-wise ops with broadcasting, runtime x runtime Mul,
    # Transpose, Concat, ReduceSum/ReduceMean, Reshape, Sub with a constant on the left,
    # Gemm with transA, alpha, beta and a matrix C.
    nodes = [
        helper.make_node("Mul", ["a", "b"], ["ab"], name="mul_ab"),
        helper.make_node("Add", ["ab", "k"], ["abk"], name="add_k"),
        helper.make_node("Sub", ["k2", "abk"], ["s"], name="sub_left"),
        helper.make_node("Transpose", ["s"], ["st"], name="transpose", perm=[1, 0]),
        helper.make_node("Gemm", ["st", "gw", "gc"], ["gm"], name="gemm", transA=1, alpha=0.5, beta=2.0),
        helper.make_node("Concat", ["gm", "a"], ["cat"], name="concat", axis=1),
        helper.make_node("ReduceSum", ["cat", "axes"], ["rs"], name="reduce_sum", keepdims=1),
        helper.make_node("ReduceMean", ["cat"], ["rm"], name="reduce_mean", axes=[0, 1], keepdims=0),
        helper.make_node("Reshape", ["rs", "shape"], ["out1"], name="reshape"),
        helper.make_node("Relu", ["rm"], ["out2"], name="relu"),
    ]
    inits = [
        init("k", rng.normal(0, 1, (4,))), init("k2", rng.normal(0, 1, (2, 1))),
        init("gw", rng.normal(0, 0.5, (4, 3))), init("gc", rng.normal(0, 0.5, (2, 3))),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "shape"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
    ]
    g = helper.make_graph(nodes, "multi_io", [vi("a", [2, 4]), vi("b", [1, 4])],
                          [vi("out1", [2]), vi("out2", [])], inits)
    save("multi_io", g, [rng.uniform(-1, 1, (2, 4)), rng.uniform(-1, 1, (1, 4))], root=TESTS)

    # Unsupported ops, for the preflight.
    nodes = [
        helper.make_node("Sum", ["x"], ["e"], name="my_sum"),
        helper.make_node("Relu", ["e"], ["r"], name="fine_relu"),
        helper.make_node("Hardmax", ["r"], ["y"], name="my_hardmax", axis=1),
    ]
    g = helper.make_graph(nodes, "unsupported", [vi("x", [1, 4])], [vi("y", [1, 4])], [])
    save("unsupported", g, rng.uniform(-1, 1, (1, 4)), root=TESTS)


if __name__ == "__main__":
    import sys

    # `digits-data` rewrites only the digits data files: no retraining, model files untouched.
    if sys.argv[1:] == ["digits-data"]:
        digits_data()
        sys.exit(0)
    if sys.argv[1:]:
        sys.exit("usage: make_samples.py [digits-data]")
    digits()
    digits_data()
    mlp()
    cnn()
    sigmoid()
    test_models()
