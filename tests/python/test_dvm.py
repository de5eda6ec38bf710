"""tests/python/test_dvm.py — the Python module `dvm` (python/dvmmodule.c), run by ctest
with pytest against the build tree's module (PYTHONPATH=build/python).

Models from graph text, .dvm files and .onnx files compute what NumPy computes, in every
tier; out= writes into the caller's arrays; params bind by name; DLPack hands memory to
and from NumPy and torch without copies (checked by address); errors are exceptions
with dvm's message; four threads share one model; 10^5 calls leave the process's
resident memory where it was; f64, i8, i16, u8, u16, u32 and u64 arrays (u64 values of
2^63 and more included) pass through a model, the buffer protocol and DLPack unchanged."""
import os
import threading

import numpy as np
import pytest

import dvm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TIERS = ["ref", "vm", "llvm", "auto"]

GELU = """graph g
input x: f32[N, 64]
param a: f32[64]
param b: f32[64]
m = mul(x, a)
s = add(m, b)
y = gelu_tanh(s)
r = reduce_sum(y, axes=[1])
output y, r
"""


def gelu_tanh(s):
    s = s.astype(np.float64)
    return 0.5 * s * (1 + np.tanh(np.sqrt(2 / np.pi) * (s + 0.044715 * s ** 3)))


def rng(seed=0):
    return np.random.default_rng(seed)


@pytest.mark.parametrize("tier", TIERS)
def test_text_model_every_tier(tier):
    m = dvm.Model(GELU, tier=tier, threads=1)
    assert m.inputs == ["x"] and m.params == ["a", "b"] and m.outputs == ["y", "r"] and m.symbols == ["N"]
    r = rng(1)
    a, b = r.standard_normal(64).astype(np.float32), r.standard_normal(64).astype(np.float32)
    m.set_param("a", a)
    m.set_param("b", b)
    for n in (1, 7, 33):
        x = r.standard_normal((n, 64)).astype(np.float32)
        y, s = m(x=x)
        want = gelu_tanh(x * a + b)
        assert y.shape == (n, 64) and y.dtype == np.float32 and s.shape == (n,)
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s, want.sum(axis=1), rtol=1e-4, atol=1e-4)


def test_dvm_file_positional_and_params_by_keyword(tmp_path):
    path = tmp_path / "g.dvm"
    path.write_text(GELU)
    m = dvm.Model(str(path), tier="vm")
    x = rng(2).standard_normal((5, 64)).astype(np.float32)
    a = np.full(64, 2, np.float32)
    b = np.zeros(64, np.float32)
    y, _ = m(x, a=a, b=b)  # an input in order, params by keyword
    np.testing.assert_allclose(y, gelu_tanh(2 * x), rtol=1e-5, atol=1e-5)
    a2 = np.full(64, -1, np.float32)  # another object: bound again
    y2, _ = m(x, a=a2, b=b)
    np.testing.assert_allclose(y2, gelu_tanh(-x), rtol=1e-5, atol=1e-5)


def test_onnx_model(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    r = rng(3)
    w = r.standard_normal((16, 8)).astype(np.float32)
    c = r.standard_normal(8).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "c"], ["z"]),
         helper.make_node("Relu", ["z"], ["y"])],
        "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(c, "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    m = dvm.Model(str(path))
    for n in (1, 9, 64):
        x = r.standard_normal((n, 16)).astype(np.float32)
        np.testing.assert_allclose(m(x=x), np.maximum(x @ w + c, 0), rtol=1e-4, atol=1e-4)


def test_out_writes_in_place():
    m = dvm.Model(GELU, tier="llvm")
    x = rng(4).standard_normal((3, 64)).astype(np.float32)
    a, b = np.ones(64, np.float32), np.zeros(64, np.float32)
    y = np.full((3, 64), np.nan, np.float32)
    s = np.full(3, np.nan, np.float32)
    address = y.ctypes.data
    got = m(x=x, a=a, b=b, out=(y, s))
    assert got[0] is y and got[1] is s and y.ctypes.data == address
    np.testing.assert_allclose(y, gelu_tanh(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(s, gelu_tanh(x).sum(axis=1), rtol=1e-4, atol=1e-4)
    with pytest.raises(dvm.Error, match="shape"):
        m(x=x, out=(np.empty((4, 64), np.float32), s))  # the wrong shape for N = 3
    with pytest.raises(ValueError, match="2 arrays for|arrays for 2"):
        m(x=x, out=(y,))


def test_strided_and_other_dtypes():
    m = dvm.Model("graph g\ninput x: f32[N, 4]\ny = mul(x, 3.0)\noutput y\n", tier="vm")
    big = np.arange(32, dtype=np.float32).reshape(4, 8)
    x = big[:, ::2]  # strided: copied once
    assert not x.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(m(x=x), 3 * x)
    mi = dvm.Model("graph g\ninput i: i64[N]\ninput f: bool[N]\nj = add(i, 5)\nk = not(f)\noutput j, k\n")
    i = np.array([1, -2, 1 << 40], np.int64)
    f = np.array([True, False, True])
    j, k = mi(i=i, f=f)
    assert j.dtype == np.int64 and k.dtype == np.bool_
    np.testing.assert_array_equal(j, i + 5)
    np.testing.assert_array_equal(k, ~f)


def extremes(npdt):
    """Eight values of npdt at and near the ends of its range (f64: the specials too)."""
    if npdt == np.float64:
        f = np.finfo(np.float64)
        return np.array([f.max, -f.max, f.tiny, 5e-324, -0.0, np.inf, np.nan, 0.1], np.float64)
    i = np.iinfo(npdt)
    if npdt == np.uint64:  # values >= 2^63 are the ones an int64 would read as negative
        return np.array([0, 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64 - 2, 2**64 - 1, 12345], np.uint64)
    return np.array([i.min, i.min + 1, -1 if i.min else 0, 0, 1, i.max // 2, i.max - 1, i.max], npdt)


NEW_DTYPES = [("f64", np.float64), ("i8", np.int8), ("i16", np.int16), ("u8", np.uint8),
              ("u16", np.uint16), ("u32", np.uint32), ("u64", np.uint64)]


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("name,npdt", NEW_DTYPES)
def test_new_dtypes_pass_through_unchanged(name, npdt, tier):
    """A reshape (data movement only) of each dtype added after bool returns the NumPy
    array's dtype and bytes: in place, strided (copied), into out=, and over DLPack."""
    m = dvm.Model(f"graph g\ninput x: {name}[N, 4]\ny = reshape(x, shape=[N, 2, 2])\noutput y\n", tier=tier)
    x = extremes(npdt).reshape(2, 4)
    y = m(x=x)
    assert y.dtype == npdt and y.shape == (2, 2, 2)
    assert y.tobytes() == x.tobytes()  # bit for bit: -0.0 and NaN included
    wide = np.zeros((2, 8), npdt)
    wide[:, ::2] = x
    ys = m(x=wide[:, ::2])  # strided: copied once
    assert ys.dtype == npdt and ys.tobytes() == x.tobytes()
    out = np.zeros((2, 2, 2), npdt)
    assert m(x=x, out=out) is out and out.tobytes() == x.tobytes()
    t = dvm.from_dlpack(x)  # DLPack in: the same memory, the dtype's name
    assert t.dtype == name and t.data_ptr == x.ctypes.data
    yt = m(x=t)
    assert yt.dtype == npdt and yt.tobytes() == x.tobytes()
    back = np.from_dlpack(t)  # and out again
    assert back.dtype == npdt and back.ctypes.data == x.ctypes.data
    if npdt == np.uint64:
        assert int(y.reshape(-1)[6]) == 2**64 - 1 and int(y.reshape(-1)[3]) == 2**63
    with pytest.raises(TypeError, match=f"where {name} is expected"):
        m(x=np.zeros((2, 4), np.float32))


def test_new_dtypes_buffer_formats():
    """dvm.Tensor's buffer format for each new dtype is one NumPy reads back as that dtype,
    and NumPy's own formats ('l' 'L' for 8-byte integers on x86-64 Linux) are accepted."""
    for name, npdt in NEW_DTYPES:
        t = dvm.from_dlpack(extremes(npdt))
        view = memoryview(t)
        assert view.itemsize == np.dtype(npdt).itemsize
        a = np.asarray(t)
        assert a.dtype == npdt and a.tobytes() == extremes(npdt).tobytes()
    m = dvm.Model("graph g\ninput x: u64[N]\ninput i: i64[N]\ny = reshape(x, shape=[N])\n"
                  "j = reshape(i, shape=[N])\noutput y, j\n", tier="ref")
    x = np.array([2**64 - 1, 0], np.uint64)
    i = np.array([-1, 2**62], np.int64)
    assert memoryview(x).itemsize == 8 and memoryview(i).itemsize == 8
    y, j = m(x=x, i=i)
    assert y.dtype == np.uint64 and y.tolist() == [2**64 - 1, 0]
    assert j.dtype == np.int64 and j.tolist() == [-1, 2**62]


def test_new_dtypes_in_lazy_arrays():
    """dvm.asarray adopts the new dtypes; int() of an integer element is exact (u64 past
    2^63 too); astype takes NumPy's names; a float scalar goes with an f64 array."""
    big = dvm.asarray(np.array([2**64 - 1], np.uint64))
    assert big.dtype == "u64" and int(big) == 2**64 - 1 and float(big) == 2.0**64
    assert int(dvm.asarray(np.array([2**63 + 5], np.uint64))) == 2**63 + 5
    assert int(dvm.asarray(np.array([-2**63 + 5], np.int64))) == -2**63 + 5
    small = dvm.asarray(np.array([-7], np.int8))
    assert small.dtype == "i8" and int(small) == -7
    for npdt, name in ((np.float64, "f64"), (np.uint16, "u16"), ("uint32", "u32"), (np.int16, "i16")):
        assert small.astype(npdt).dtype == name
    assert np.asarray(small.astype(np.float64)).dtype == np.float64
    f = dvm.asarray(np.array([1.5], np.float64))
    got = np.asarray(f + 1.25)
    assert got.dtype == np.float64 and got.tolist() == [2.75]
    with pytest.raises(TypeError, match="float scalar"):
        small + 0.5


def test_dlpack_numpy_same_memory():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    t = dvm.from_dlpack(a)  # in: the array's memory
    assert t.data_ptr == a.ctypes.data and t.shape == (3, 4) and t.dtype == "f32"
    back = np.from_dlpack(t)  # out again: the same memory
    assert back.ctypes.data == a.ctypes.data
    np.testing.assert_array_equal(back, a)
    view = np.asarray(t)  # the buffer protocol: the same memory
    assert view.ctypes.data == a.ctypes.data
    del a, back, view
    m = dvm.Model("graph g\ninput x: f32[N, 4]\ny = add(x, 1.0)\noutput y\n", tier="vm")
    np.testing.assert_array_equal(m(x=t), np.arange(12, dtype=np.float32).reshape(3, 4) + 1)


def test_dlpack_torch_same_memory():
    torch = pytest.importorskip("torch")
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    t = dvm.from_dlpack(x)
    assert t.data_ptr == x.data_ptr()
    y = torch.from_dlpack(t)
    assert y.data_ptr() == x.data_ptr()
    m = dvm.Model("graph g\ninput x: f32[N, 4]\ny = mul(x, x)\noutput y\n", tier="llvm")
    np.testing.assert_array_equal(m(x=x), (x * x).numpy())  # a torch tensor as an input
    out = np.asarray(m(x=x))
    z = torch.from_dlpack(dvm.from_dlpack(out))
    assert z.data_ptr() == out.ctypes.data
    with pytest.raises(ValueError, match="not C-contiguous"):
        dvm.from_dlpack(x.t())
    with pytest.raises(ValueError, match="not one dvm has"):
        dvm.from_dlpack(torch.zeros(3, dtype=torch.complex64))
    for dt, name in ((torch.float64, "f64"), (torch.int8, "i8"), (torch.int16, "i16"), (torch.uint8, "u8")):
        x = torch.arange(6, dtype=dt)
        t = dvm.from_dlpack(x)
        assert t.dtype == name and t.data_ptr == x.data_ptr()
        back = torch.from_dlpack(t)
        assert back.dtype == dt and torch.equal(back, x)


def test_errors_carry_dvms_message():
    with pytest.raises(dvm.Error, match=r"<text>:3: unknown op 'frobnicate'"):
        dvm.Model("graph g\ninput x: f32[N]\ny = frobnicate(x)\noutput y\n")
    with pytest.raises(dvm.Error, match="no-such-file"):
        dvm.Model("/no-such-file.dvm")
    with pytest.raises(ValueError, match="tier"):
        dvm.Model(GELU, tier="fast")
    m = dvm.Model("graph g\ninput x: f32[N, 4]\ninput z: f32[N, 4]\ny = add(x, z)\noutput y\n")
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(TypeError, match="input 'z' is missing"):
        m(x=x)
    with pytest.raises(TypeError, match="where f32 is expected"):
        m(x=x, z=np.zeros((2, 4)))
    with pytest.raises(TypeError, match="'w' is not an input"):
        m(x=x, z=x, w=x)
    with pytest.raises(dvm.Error, match="N"):  # N = 2 from x, 3 from z
        m(x=x, z=np.zeros((3, 4), np.float32))
    with pytest.raises(TypeError, match="neither a buffer nor a DLPack"):
        m(x=x, z=[[0.0] * 4] * 2)


def test_threads_share_a_model():
    m = dvm.Model(GELU, threads=1)
    a, b = np.ones(64, np.float32), np.zeros(64, np.float32)
    m.set_param("a", a)
    m.set_param("b", b)
    r = rng(5)
    xs = [r.standard_normal((n, 64)).astype(np.float32) for n in (1, 3, 17, 64)]
    want = [m(x=x)[0] for x in xs]
    errors = []

    def work(k):
        try:
            for i in range(300):
                j = (i + k) % len(xs)
                np.testing.assert_array_equal(m(x=xs[j])[0], want[j])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_leak_over_many_calls():
    m = dvm.Model("graph g\ninput x: f32[N, 16]\ny = mul(x, 2.0)\noutput y\n", tier="vm")
    x = np.ones((4, 16), np.float32)
    out = np.empty((4, 16), np.float32)
    for _ in range(2000):  # warm: plans, arenas, allocator pools
        m(x=x)
        m(x=x, out=out)
    before = rss_bytes()
    for _ in range(50000):
        m(x=x)
        m(x=x, out=out)
    grown = rss_bytes() - before
    assert grown < 4 << 20, "resident memory grew by %d bytes over 10^5 calls" % grown


def test_out_from_a_generator():
    m = dvm.Model("graph g\ninput x: f32[N, 4]\ny = add(x, 1.0)\nz = mul(x, 2.0)\noutput y, z\n", tier="vm")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    got = m(x=x, out=(np.empty((2, 4), np.float32) for _ in range(2)))  # the items live in no other place
    assert isinstance(got, tuple) and len(got) == 2
    np.testing.assert_array_equal(got[0], x + 1)
    np.testing.assert_array_equal(got[1], x * 2)


def test_params_are_not_rebound_under_a_run():
    m = dvm.Model("graph g\ninput x: f32[N, 256]\nparam w: f32[256, 256]\ny = matmul(x, w)\noutput y\n",
                  tier="llvm", threads=1)
    ones, twos = np.ones((256, 256), np.float32), np.full((256, 256), 2, np.float32)
    m.set_param("w", ones)
    x = np.ones((64, 256), np.float32)
    stop, bad, refused = threading.Event(), [], []

    def run():
        while not stop.is_set():
            y = m(x=x)
            if not (np.all(y == 256) or np.all(y == 512)):
                bad.append(np.unique(y)[:5])

    workers = [threading.Thread(target=run) for _ in range(3)]
    for t in workers:
        t.start()
    for i in range(2000):
        try:
            m.set_param("w", twos if i % 2 else ones)
        except RuntimeError as e:
            assert "running on another thread" in str(e)
            refused.append(1)
    stop.set()
    for t in workers:
        t.join()
    assert not bad, "runs saw a param change under them: %s" % bad[:3]
    assert refused, "no set_param met a run in flight (the test did not race)"
