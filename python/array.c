/* python/array.c — dvm.Array: lazy arrays over dvm's lazy API (docs/lazy.md, docs/python.md).
 *
 *   a = dvm.asarray(np.ones((4, 1024), np.float32))   # no copy
 *   y = dvm.tanh(a * 2 + 1).sum(axis=-1)               # recorded; shapes known at once
 *   np.asarray(y)                                      # computed: one fused kernel
 *
 * An Array holds one dvm_lazy. Operators (+ - * / ** @, unary -, abs, comparisons),
 * slicing, NumPy-named methods and functions record one op each; reading the values
 * (np.asarray, __dlpack__, float(), bool(), .numpy()) flushes the thread's trace. An
 * Array the program no longer references is let go (dvm_lazy_destroy), so intermediates
 * are fused and never written. Arrays made from Python objects adopt their memory: the
 * buffer (or DLPack tensor) is released by dvm when the last value that reads it goes,
 * under the GIL. Python scalars in operators become constants of the other operands'
 * dtype (the first that is not bool). The GIL is held throughout (recording is short, and a flush that released it
 * could wait on another thread's trace while that thread waits for the GIL). */
#include "dvmpy.h"

static dvm_context *ctx; /* the lazy arrays' context, made on first use (under the GIL) */

static dvm_context *context(void) {
  if (!ctx && dvm_context_create(&ctx)) return py_error(), NULL;
  return ctx;
}

typedef struct {
  PyObject_HEAD
  dvm_lazy *x;
} ArrayObject;

static PyTypeObject ArrayType;

static PyObject *array_new(dvm_lazy *x) {
  ArrayObject *o = PyObject_New(ArrayObject, &ArrayType);
  if (!o) return dvm_lazy_destroy(x), NULL;
  o->x = x;
  return (PyObject *)o;
}

static void array_dealloc(ArrayObject *o) {
  dvm_lazy_destroy(o->x);
  Py_TYPE(o)->tp_free((PyObject *)o);
}

/* ---- Python objects as lazy values -------------------------------------------------------- */

/* A buffer held as a DLPack tensor, so that dvm can own it: its deleter releases the
 * buffer under the GIL, whichever thread drops the last reference. */
typedef struct Held {
  DLManagedTensor m;
  Py_buffer view;
  int64_t shape[DVM_MAX_RANK];
} Held;

static void held_deleter(DLManagedTensor *m) {
  Held *h = m->manager_ctx;
  PyGILState_STATE s = PyGILState_Ensure();
  PyBuffer_Release(&h->view);
  PyGILState_Release(s);
  PyMem_RawFree(h);
}

/* obj (a buffer, a DLPack producer, a dvm.Tensor) as a new lazy value over its memory. */
static dvm_lazy *adopt(PyObject *obj) {
  dvm_context *c = context();
  if (!c) return NULL;
  dvm_tensor *t = NULL;
  if (PyObject_CheckBuffer(obj) && (!PyObject_TypeCheck(obj, &TensorType) ||
                                    py_format_of(dvm_tensor_dtype(((TensorObject *)obj)->t)))) {
    Held *h = PyMem_RawCalloc(1, sizeof *h);
    if (!h) return PyErr_NoMemory(), NULL;
    if (PyObject_GetBuffer(obj, &h->view, PyBUF_RECORDS_RO)) return PyMem_RawFree(h), NULL;
    Py_buffer *v = &h->view;
    int dt = py_dtype_of(v->format, v->itemsize);
    if (dt < 0 || v->ndim > DVM_MAX_RANK) {
      PyErr_Format(dt < 0 ? PyExc_TypeError : PyExc_ValueError, "dvm.asarray: %s",
                   dt < 0 ? "the array's dtype is not one of f32 f16 f64 i8 i16 i32 i64 u8 u16 u32 u64 bool" : "rank above 8");
      PyBuffer_Release(v), PyMem_RawFree(h);
      return NULL;
    }
    for (int i = 0; i < v->ndim; i++) h->shape[i] = v->shape ? v->shape[i] : v->len / v->itemsize;
    if (PyBuffer_IsContiguous(v, 'C')) {
      h->m.dl_tensor = (DLTensor){.data = v->buf, .device = {kDLCPU, 0}, .ndim = v->ndim,
                                  .dtype = py_dl_dtype[dt], .shape = h->shape};
      h->m.manager_ctx = h, h->m.deleter = held_deleter;
      if (dvm_tensor_from_dlpack(&h->m, &t)) {
        PyBuffer_Release(v), PyMem_RawFree(h);
        return py_error(), NULL;
      }
    } else { /* strided: one C-ordered copy that dvm owns */
      int st = dvm_tensor_create((dvm_dtype)dt, v->ndim, h->shape, &t);
      if (!st && PyBuffer_ToContiguous(dvm_tensor_data(t), v, v->len, 'C')) st = -1;
      PyBuffer_Release(v), PyMem_RawFree(h);
      if (st) return dvm_tensor_destroy(t), st > 0 ? py_error() : NULL, NULL;
    }
  } else if (py_take_dlpack(obj, "dvm.asarray", &t)) {
    return NULL;
  }
  dvm_lazy *x;
  if (dvm_lazy_adopt(c, t, &x)) return dvm_tensor_destroy(t), py_error(), NULL;
  return x;
}

/* A Python scalar as a constant of dtype dt (bool, int, float). */
static dvm_lazy *scalar(PyObject *obj, dvm_dtype dt) {
  dvm_context *c = context();
  if (!c) return NULL;
  double v = PyFloat_AsDouble(obj);
  if (v == -1 && PyErr_Occurred()) return NULL;
  bool fl = dt == DVM_F32 || dt == DVM_F16 || dt == DVM_BF16 || dt == DVM_F64;
  if (PyFloat_Check(obj) && !fl && v != (double)(int64_t)v) {
    PyErr_Format(PyExc_TypeError, "a float scalar with a %s array (cast it: a.astype('f32'))", dvm_dtype_name(dt));
    return NULL;
  }
  dvm_lazy *x;
  if (dvm_lazy_scalar(c, v, dt, &x)) return py_error(), NULL;
  return x;
}

static bool is_scalar(PyObject *o) { return PyFloat_Check(o) || PyLong_Check(o) || PyBool_Check(o); }

/* Apply op to the objects args[0..n): Arrays as they are, scalars as constants of the
 * first Array's dtype, other objects adopted. */
static PyObject *apply(const char *op, int n, PyObject *const *args, const char *attrs) {
  dvm_context *c = context();
  if (!c) return NULL;
  dvm_lazy *in[8], *tmp[8];
  int ntmp = 0;
  int like = -1; /* the first Array's dtype that is not bool, else the first's (where's condition) */
  for (int i = 0; i < n; i++)
    if (PyObject_TypeCheck(args[i], &ArrayType)) {
      dvm_dtype d = dvm_lazy_dtype(((ArrayObject *)args[i])->x);
      if (like < 0 || (like == DVM_BOOL && d != DVM_BOOL)) like = (int)d;
    }
  if (like < 0) like = DVM_F32;
  PyObject *res = NULL;
  for (int i = 0; i < n; i++) {
    if (PyObject_TypeCheck(args[i], &ArrayType)) {
      in[i] = ((ArrayObject *)args[i])->x;
      continue;
    }
    if (!(in[i] = is_scalar(args[i]) ? scalar(args[i], (dvm_dtype)like) : adopt(args[i]))) goto done;
    tmp[ntmp++] = in[i];
  }
  dvm_lazy *y;
  if (dvm_lazy_op(c, op, n, in, attrs, &y)) py_error();
  else res = array_new(y);
done:
  for (int i = 0; i < ntmp; i++) dvm_lazy_destroy(tmp[i]);
  return res;
}

static PyObject *unary(const char *op, PyObject *a) { return apply(op, 1, &a, NULL); }
static PyObject *binary(const char *op, PyObject *a, PyObject *b) {
  PyObject *args[2] = {a, b};
  return apply(op, 2, args, NULL);
}

/* ---- operators ------------------------------------------------------------------------------- */

/* Number slots get (a, b) with either one the Array; anything else is left to Python. */
static bool operands_ok(PyObject *a, PyObject *b) {
  return (PyObject_TypeCheck(a, &ArrayType) || is_scalar(a) || PyObject_CheckBuffer(a)) &&
         (PyObject_TypeCheck(b, &ArrayType) || is_scalar(b) || PyObject_CheckBuffer(b));
}
#define BINOP(fn, op)                                                                             \
  static PyObject *fn(PyObject *a, PyObject *b) {                                                 \
    if (!operands_ok(a, b)) Py_RETURN_NOTIMPLEMENTED;                                             \
    return binary(op, a, b);                                                                      \
  }
BINOP(nb_add, "add")
BINOP(nb_sub, "sub")
BINOP(nb_mul, "mul")
BINOP(nb_div, "div")
BINOP(nb_matmul, "matmul")
static PyObject *nb_pow(PyObject *a, PyObject *b, PyObject *mod) {
  if (mod != Py_None || !operands_ok(a, b)) Py_RETURN_NOTIMPLEMENTED;
  return binary("pow", a, b);
}
static PyObject *nb_neg(PyObject *a) { return unary("neg", a); }
static PyObject *nb_abs(PyObject *a) { return unary("abs", a); }
static PyObject *nb_pos(PyObject *a) { return Py_NewRef(a); }

/* a's computed tensor, which must have one element (NULL with an exception set). */
static dvm_tensor *one_tensor(ArrayObject *a) {
  dvm_tensor *t;
  if (dvm_lazy_tensor(a->x, &t)) return py_error(), NULL;
  if (dvm_tensor_numel(t) != 1)
    return PyErr_Format(PyExc_TypeError, "only an array of one element converts to a Python scalar (this one has %lld)",
                        (long long)dvm_tensor_numel(t)), NULL;
  return t;
}
/* The one element of a, computed, as a double. */
static int one_value(ArrayObject *a, double *v) {
  dvm_tensor *t = one_tensor(a);
  if (!t) return -1;
  *v = dvm_tensor_get_f64(t, 0);
  return 0;
}
static PyObject *nb_float(PyObject *a) {
  double v;
  return one_value((ArrayObject *)a, &v) ? NULL : PyFloat_FromDouble(v);
}
/* int(a): floats truncate; integers exactly (a u64 element is its bits in the int64) */
static PyObject *nb_int(PyObject *a) {
  dvm_tensor *t = one_tensor((ArrayObject *)a);
  if (!t) return NULL;
  switch (dvm_tensor_dtype(t)) {
  case DVM_F32: case DVM_F16: case DVM_BF16: case DVM_F64: return PyLong_FromDouble(dvm_tensor_get_f64(t, 0));
  case DVM_U64: return PyLong_FromUnsignedLongLong((unsigned long long)dvm_tensor_get_i64(t, 0));
  default: return PyLong_FromLongLong(dvm_tensor_get_i64(t, 0));
  }
}
static int nb_bool(PyObject *a) {
  double v;
  return one_value((ArrayObject *)a, &v) ? -1 : v != 0;
}

static PyNumberMethods array_number = {
    .nb_add = nb_add, .nb_subtract = nb_sub, .nb_multiply = nb_mul, .nb_true_divide = nb_div,
    .nb_power = nb_pow, .nb_negative = nb_neg, .nb_positive = nb_pos, .nb_absolute = nb_abs,
    .nb_bool = nb_bool, .nb_int = nb_int, .nb_float = nb_float, .nb_matrix_multiply = nb_matmul,
};

static PyObject *richcompare(PyObject *a, PyObject *b, int op) {
  static const char *const names[] = {[Py_LT] = "lt", [Py_LE] = "le", [Py_EQ] = "eq",
                                      [Py_NE] = "ne", [Py_GT] = "gt", [Py_GE] = "ge"};
  if (!operands_ok(a, b)) Py_RETURN_NOTIMPLEMENTED;
  return binary(names[op], a, b);
}

/* ---- indexing: ints and slices (positive steps), one per leading axis ------------------------- */

static PyObject *subscript(ArrayObject *self, PyObject *key) {
  int r = dvm_lazy_rank(self->x);
  const int64_t *shape = dvm_lazy_shape(self->x);
  PyObject *one[1] = {key};
  PyObject *const *keys = PyTuple_Check(key) ? &PyTuple_GET_ITEM(key, 0) : one;
  Py_ssize_t nk = PyTuple_Check(key) ? PyTuple_GET_SIZE(key) : 1;
  if (nk > r) return PyErr_Format(PyExc_IndexError, "%zd indices for an array of rank %d", nk, r);
  char starts[256] = "", ends[256] = "", steps[256] = "", axes[128] = "", drop[128] = "";
  size_t ps = 0, pe = 0, pt = 0, pa = 0, pd = 0;
  int nslice = 0, ndrop = 0;
  for (Py_ssize_t i = 0; i < nk; i++) {
    Py_ssize_t s, e, st, len;
    if (PySlice_Check(keys[i])) {
      if (PySlice_GetIndicesEx(keys[i], (Py_ssize_t)shape[i], &s, &e, &st, &len)) return NULL;
      if (st <= 0) return PyErr_Format(PyExc_IndexError, "dvm arrays slice with positive steps (axis %zd)", i);
      if (s == 0 && e == shape[i] && st == 1) continue; /* the whole axis */
      if (len == 0) e = s;
    } else {
      Py_ssize_t k = PyNumber_AsSsize_t(keys[i], PyExc_IndexError);
      if (k == -1 && PyErr_Occurred()) return NULL;
      if (k < 0) k += (Py_ssize_t)shape[i];
      if (k < 0 || k >= shape[i])
        return PyErr_Format(PyExc_IndexError, "index %zd out of range for axis %zd of size %lld", k, i,
                            (long long)shape[i]);
      s = k, e = k + 1, st = 1;
      pd += (size_t)snprintf(drop + pd, sizeof drop - pd, "%s%zd", ndrop++ ? ", " : "", i);
    }
    const char *sep = nslice++ ? ", " : "";
    ps += (size_t)snprintf(starts + ps, sizeof starts - ps, "%s%zd", sep, s);
    pe += (size_t)snprintf(ends + pe, sizeof ends - pe, "%s%zd", sep, e);
    pt += (size_t)snprintf(steps + pt, sizeof steps - pt, "%s%zd", sep, st);
    pa += (size_t)snprintf(axes + pa, sizeof axes - pa, "%s%zd", sep, i);
  }
  PyObject *cur = Py_NewRef((PyObject *)self);
  if (nslice) {
    char attrs[1024];
    snprintf(attrs, sizeof attrs, "axes=[%s], starts=[%s], ends=[%s], steps=[%s]", axes, starts, ends, steps);
    PyObject *s = apply("slice", 1, &cur, attrs);
    Py_DECREF(cur);
    if (!(cur = s)) return NULL;
  }
  if (ndrop) {
    char attrs[160];
    snprintf(attrs, sizeof attrs, "axes=[%s]", drop);
    PyObject *s = apply("squeeze", 1, &cur, attrs);
    Py_DECREF(cur);
    cur = s;
  }
  return cur;
}

static Py_ssize_t length(ArrayObject *self) {
  if (!dvm_lazy_rank(self->x)) return PyErr_SetString(PyExc_TypeError, "len() of a 0-d array"), -1;
  return (Py_ssize_t)dvm_lazy_shape(self->x)[0];
}

static PyMappingMethods array_mapping = {(lenfunc)length, (binaryfunc)subscript, NULL};

/* ---- values out ------------------------------------------------------------------------------ */

/* A dvm.Tensor over self's computed values (kept alive by it). */
static PyObject *computed(ArrayObject *self) {
  dvm_tensor *t, *view;
  if (dvm_lazy_tensor(self->x, &t)) return py_error();
  if (dvm_tensor_wrap(dvm_tensor_dtype(t), dvm_tensor_rank(t), dvm_tensor_shape(t), dvm_tensor_data(t), &view))
    return py_error();
  return py_tensor_new(view, (PyObject *)self);
}

static PyObject *array_numpy(ArrayObject *self, PyObject *unused) {
  (void)unused;
  PyObject *t = computed(self);
  if (!t) return NULL;
  PyObject *np = PyImport_ImportModule("numpy");
  PyObject *a = np ? PyObject_CallMethod(np, "asarray", "O", t) : NULL;
  Py_XDECREF(np);
  Py_DECREF(t);
  return a;
}

static PyObject *array_array(ArrayObject *self, PyObject *args, PyObject *kw) {
  static char *names[] = {"dtype", "copy", NULL};
  PyObject *dtype = Py_None, *copy = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO", names, &dtype, &copy)) return NULL;
  PyObject *a = array_numpy(self, NULL);
  if (a && (dtype != Py_None || copy == Py_True)) {
    PyObject *b = PyObject_CallMethod(a, "astype", "O", dtype == Py_None ? PyObject_GetAttrString(a, "dtype") : dtype);
    Py_DECREF(a);
    a = b;
  }
  return a;
}

static PyObject *array_dlpack(ArrayObject *self, PyObject *args, PyObject *kw) {
  PyObject *t = computed(self);
  if (!t) return NULL;
  PyObject *f = PyObject_GetAttrString(t, "__dlpack__");
  PyObject *cap = f ? PyObject_Call(f, args, kw) : NULL;
  Py_XDECREF(f);
  Py_DECREF(t);
  return cap;
}

static PyObject *array_dlpack_device(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  return Py_BuildValue("(ii)", kDLCPU, 0);
}

/* ---- methods ----------------------------------------------------------------------------------- */

/* "axes=[...]" for axis (None: every axis, an int, or a tuple of ints) over rank r. */
static int axes_attr(PyObject *axis, int r, char *out, size_t n) {
  size_t p = (size_t)snprintf(out, n, "axes=[");
  if (axis == Py_None) {
    for (int i = 0; i < r; i++) p += (size_t)snprintf(out + p, n - p, "%s%d", i ? ", " : "", i);
  } else if (PyTuple_Check(axis) || PyList_Check(axis)) {
    PyObject *seq = PySequence_Fast(axis, "axis");
    for (Py_ssize_t i = 0; seq && i < PySequence_Fast_GET_SIZE(seq); i++) {
      long a = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
      if (a == -1 && PyErr_Occurred()) return Py_DECREF(seq), -1;
      p += (size_t)snprintf(out + p, n - p, "%s%ld", i ? ", " : "", a);
    }
    Py_XDECREF(seq);
  } else {
    long a = PyLong_AsLong(axis);
    if (a == -1 && PyErr_Occurred()) return -1;
    p += (size_t)snprintf(out + p, n - p, "%ld", a);
  }
  snprintf(out + p, n - p, "]");
  return 0;
}

static PyObject *reduce(const char *op, PyObject *self, PyObject *args, PyObject *kw) {
  static char *names[] = {"axis", "keepdims", NULL};
  PyObject *axis = Py_None;
  int keep = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|Op", names, &axis, &keep)) return NULL;
  char attrs[300];
  if (axes_attr(axis, dvm_lazy_rank(((ArrayObject *)self)->x), attrs, sizeof attrs - 20)) return NULL;
  if (keep) strcat(attrs, ", keepdims=1");
  return apply(op, 1, &self, attrs);
}
#define REDUCE(fn, op) \
  static PyObject *fn(PyObject *self, PyObject *args, PyObject *kw) { return reduce(op, self, args, kw); }
REDUCE(m_sum, "reduce_sum")
REDUCE(m_mean, "reduce_mean")
REDUCE(m_max, "reduce_max")
REDUCE(m_min, "reduce_min")
REDUCE(m_prod, "reduce_prod")

static PyObject *m_argmax(PyObject *self, PyObject *args, PyObject *kw) {
  static char *names[] = {"axis", "keepdims", NULL};
  int axis = -1, keep = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|ip", names, &axis, &keep)) return NULL;
  char attrs[64];
  snprintf(attrs, sizeof attrs, "axis=%d, keepdims=%d", axis, keep);
  return apply("argmax", 1, &self, attrs);
}

/* Integers from args (or one tuple/list argument) into "[a, b, ...]". */
static int int_list(PyObject *args, char *out, size_t n, int *count) {
  PyObject *src = PyTuple_GET_SIZE(args) == 1 && !PyLong_Check(PyTuple_GET_ITEM(args, 0)) ? PyTuple_GET_ITEM(args, 0) : args;
  PyObject *seq = PySequence_Fast(src, "expected integers");
  if (!seq) return -1;
  size_t p = (size_t)snprintf(out, n, "[");
  *count = (int)PySequence_Fast_GET_SIZE(seq);
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
    long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
    if (v == -1 && PyErr_Occurred()) return Py_DECREF(seq), -1;
    p += (size_t)snprintf(out + p, n - p, "%s%lld", i ? ", " : "", v);
  }
  snprintf(out + p, n - p, "]");
  Py_DECREF(seq);
  return 0;
}

static PyObject *m_reshape(PyObject *self, PyObject *args) {
  char list[400], attrs[420];
  int k;
  if (int_list(args, list, sizeof list, &k)) return NULL;
  snprintf(attrs, sizeof attrs, "shape=%s", list);
  return apply("reshape", 1, &self, attrs);
}

static PyObject *m_transpose(PyObject *self, PyObject *args) {
  char list[400], attrs[420];
  int k = 0, r = dvm_lazy_rank(((ArrayObject *)self)->x);
  if (PyTuple_GET_SIZE(args) == 0) { /* reversed axes */
    size_t p = (size_t)snprintf(list, sizeof list, "[");
    for (int i = 0; i < r; i++) p += (size_t)snprintf(list + p, sizeof list - p, "%s%d", i ? ", " : "", r - 1 - i);
    snprintf(list + p, sizeof list - p, "]");
  } else if (int_list(args, list, sizeof list, &k)) {
    return NULL;
  }
  snprintf(attrs, sizeof attrs, "perm=%s", list);
  return apply("transpose", 1, &self, attrs);
}

static PyObject *get_T(PyObject *self, void *unused) {
  (void)unused;
  PyObject *none = PyTuple_New(0);
  PyObject *r = none ? m_transpose(self, none) : NULL;
  Py_XDECREF(none);
  return r;
}

/* A dtype name from a string or anything with a name (np.float32, "float32"). */
static const char *dtype_name(PyObject *dt, char *buf, size_t n) {
  PyObject *s = PyUnicode_Check(dt) ? Py_NewRef(dt) : PyObject_GetAttrString(dt, "__name__");
  if (!s) return NULL;
  const char *c = PyUnicode_AsUTF8(s);
  if (!c) return Py_DECREF(s), NULL;
  static const char *const map[][2] = {
      {"float32", "f32"}, {"float16", "f16"}, {"bfloat16", "bf16"}, {"float64", "f64"}, {"int8", "i8"},
      {"int16", "i16"},   {"int32", "i32"},   {"int64", "i64"},     {"uint8", "u8"},    {"uint16", "u16"},
      {"uint32", "u32"},  {"uint64", "u64"},  {"bool", "bool"},     {"bool_", "bool"}};
  const char *name = c;
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    if (!strcmp(c, map[i][0])) name = map[i][1];
  snprintf(buf, n, "%s", name);
  Py_DECREF(s);
  return buf;
}

static PyObject *m_astype(PyObject *self, PyObject *dt) {
  char name[32], attrs[48];
  if (!dtype_name(dt, name, sizeof name)) return NULL;
  snprintf(attrs, sizeof attrs, "to=%s", name);
  return apply("cast", 1, &self, attrs);
}

static PyObject *get_shape(ArrayObject *self, void *unused) {
  (void)unused;
  int r = dvm_lazy_rank(self->x);
  PyObject *t = PyTuple_New(r);
  for (int i = 0; t && i < r; i++) PyTuple_SET_ITEM(t, i, PyLong_FromLongLong(dvm_lazy_shape(self->x)[i]));
  return t;
}
static PyObject *get_dtype(ArrayObject *self, void *unused) {
  (void)unused;
  return PyUnicode_FromString(dvm_dtype_name(dvm_lazy_dtype(self->x)));
}
static PyObject *get_ndim(ArrayObject *self, void *unused) {
  (void)unused;
  return PyLong_FromLong(dvm_lazy_rank(self->x));
}

static PyObject *array_repr(ArrayObject *self) {
  char buf[256];
  size_t p = (size_t)snprintf(buf, sizeof buf, "dvm.Array(%s[", dvm_dtype_name(dvm_lazy_dtype(self->x)));
  for (int i = 0; i < dvm_lazy_rank(self->x) && p < sizeof buf - 24; i++)
    p += (size_t)snprintf(buf + p, sizeof buf - p, "%s%lld", i ? ", " : "", (long long)dvm_lazy_shape(self->x)[i]);
  snprintf(buf + p, sizeof buf - p, "])");
  return PyUnicode_FromString(buf);
}

static PyMethodDef array_methods[] = {
    {"sum", (PyCFunction)(void (*)(void))m_sum, METH_VARARGS | METH_KEYWORDS, "sum(axis=None, keepdims=False)"},
    {"mean", (PyCFunction)(void (*)(void))m_mean, METH_VARARGS | METH_KEYWORDS, "mean(axis=None, keepdims=False)"},
    {"max", (PyCFunction)(void (*)(void))m_max, METH_VARARGS | METH_KEYWORDS, "max(axis=None, keepdims=False)"},
    {"min", (PyCFunction)(void (*)(void))m_min, METH_VARARGS | METH_KEYWORDS, "min(axis=None, keepdims=False)"},
    {"prod", (PyCFunction)(void (*)(void))m_prod, METH_VARARGS | METH_KEYWORDS, "prod(axis=None, keepdims=False)"},
    {"argmax", (PyCFunction)(void (*)(void))m_argmax, METH_VARARGS | METH_KEYWORDS, "argmax(axis=-1, keepdims=False)"},
    {"reshape", m_reshape, METH_VARARGS, "reshape(*shape): -1 once for the rest"},
    {"transpose", m_transpose, METH_VARARGS, "transpose(*axes): reversed axes without"},
    {"astype", m_astype, METH_O, "astype(dtype): a cast"},
    {"numpy", (PyCFunction)array_numpy, METH_NOARGS, "The values as a NumPy array (computed; no copy)."},
    {"__array__", (PyCFunction)(void (*)(void))array_array, METH_VARARGS | METH_KEYWORDS, "np.asarray(a): computed"},
    {"__dlpack__", (PyCFunction)(void (*)(void))array_dlpack, METH_VARARGS | METH_KEYWORDS, "DLPack (computed; no copy)."},
    {"__dlpack_device__", array_dlpack_device, METH_NOARGS, "(kDLCPU, 0)."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef array_getset[] = {
    {"shape", (getter)get_shape, NULL, "The shape (known before the values).", NULL},
    {"dtype", (getter)get_dtype, NULL, "The dtype's name: f32 f16 bf16 f64 i8 i16 i32 i64 u8 u16 u32 u64 bool.", NULL},
    {"ndim", (getter)get_ndim, NULL, "The rank.", NULL},
    {"T", (getter)get_T, NULL, "The axes reversed.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject ArrayType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dvm.Array",
    .tp_basicsize = sizeof(ArrayObject),
    .tp_dealloc = (destructor)array_dealloc,
    .tp_repr = (reprfunc)array_repr,
    .tp_as_number = &array_number,
    .tp_as_mapping = &array_mapping,
    .tp_richcompare = richcompare,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A lazy array: ops on it are recorded and fused; reading its values computes them.",
    .tp_methods = array_methods,
    .tp_getset = array_getset,
};

/* ---- module functions ----------------------------------------------------------------------- */

static PyObject *f_asarray(PyObject *mod, PyObject *obj) {
  (void)mod;
  if (PyObject_TypeCheck(obj, &ArrayType)) return Py_NewRef(obj);
  if (is_scalar(obj)) { /* a 0-d f32 (i64 for int, bool for bool) constant */
    dvm_dtype dt = PyBool_Check(obj) ? DVM_BOOL : PyLong_Check(obj) ? DVM_I64 : DVM_F32;
    dvm_lazy *x = scalar(obj, dt);
    return x ? array_new(x) : NULL;
  }
  dvm_lazy *x = adopt(obj);
  return x ? array_new(x) : NULL;
}

#define UNARY_FN(name) \
  static PyObject *f_##name(PyObject *mod, PyObject *a) { (void)mod; return unary(#name, a); }
UNARY_FN(exp)
UNARY_FN(log)
UNARY_FN(sqrt)
UNARY_FN(rsqrt)
UNARY_FN(reciprocal)
UNARY_FN(tanh)
UNARY_FN(sigmoid)
UNARY_FN(relu)
UNARY_FN(gelu)
UNARY_FN(gelu_tanh)
UNARY_FN(silu)
UNARY_FN(erf)
UNARY_FN(sin)
UNARY_FN(cos)
UNARY_FN(floor)
UNARY_FN(ceil)
UNARY_FN(round)
UNARY_FN(sign)
UNARY_FN(abs)
static PyObject *f_negative(PyObject *mod, PyObject *a) { (void)mod; return unary("neg", a); }

static PyObject *f_binary(PyObject *args, const char *op) {
  PyObject *a, *b;
  if (!PyArg_ParseTuple(args, "OO", &a, &b)) return NULL;
  return binary(op, a, b);
}
static PyObject *f_maximum(PyObject *mod, PyObject *args) { (void)mod; return f_binary(args, "max"); }
static PyObject *f_minimum(PyObject *mod, PyObject *args) { (void)mod; return f_binary(args, "min"); }
static PyObject *f_matmul(PyObject *mod, PyObject *args) { (void)mod; return f_binary(args, "matmul"); }
static PyObject *f_power(PyObject *mod, PyObject *args) { (void)mod; return f_binary(args, "pow"); }

static PyObject *f_where(PyObject *mod, PyObject *args) {
  (void)mod;
  PyObject *a[3];
  if (!PyArg_ParseTuple(args, "OOO", &a[0], &a[1], &a[2])) return NULL;
  return apply("select", 3, a, NULL);
}

static PyObject *f_axis_op(const char *op, PyObject *args, PyObject *kw, int default_axis) {
  static char *names[] = {"x", "axis", NULL};
  PyObject *x;
  int axis = default_axis;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i", names, &x, &axis)) return NULL;
  char attrs[32];
  snprintf(attrs, sizeof attrs, "axis=%d", axis);
  return apply(op, 1, &x, attrs);
}
static PyObject *f_softmax(PyObject *mod, PyObject *args, PyObject *kw) { (void)mod; return f_axis_op("softmax", args, kw, -1); }
static PyObject *f_log_softmax(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  return f_axis_op("log_softmax", args, kw, -1);
}

static PyObject *f_layernorm(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  static char *names[] = {"x", "gamma", "beta", "axis", "eps", NULL};
  PyObject *a[3];
  int axis = -1;
  double eps = 1e-5;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OOO|id", names, &a[0], &a[1], &a[2], &axis, &eps)) return NULL;
  char attrs[64];
  snprintf(attrs, sizeof attrs, "axis=%d, eps=%.17g", axis, eps);
  return apply("layernorm", 3, a, attrs);
}

static PyObject *f_rmsnorm(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  static char *names[] = {"x", "gamma", "eps", NULL};
  PyObject *a[2];
  double eps = 1e-5;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|d", names, &a[0], &a[1], &eps)) return NULL;
  char attrs[40];
  snprintf(attrs, sizeof attrs, "eps=%.17g", eps);
  return apply("rmsnorm", 2, a, attrs);
}

static PyObject *f_clip(PyObject *mod, PyObject *args) {
  (void)mod;
  PyObject *x;
  double lo, hi;
  if (!PyArg_ParseTuple(args, "Odd", &x, &lo, &hi)) return NULL;
  char attrs[96];
  snprintf(attrs, sizeof attrs, "lo=%.17g, hi=%.17g", lo, hi);
  return apply("clip", 1, &x, attrs);
}

static PyObject *f_concatenate(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  static char *names[] = {"arrays", "axis", NULL};
  PyObject *list;
  int axis = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i", names, &list, &axis)) return NULL;
  PyObject *seq = PySequence_Fast(list, "concatenate takes a sequence of arrays");
  if (!seq) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n < 1 || n > 8) {
    Py_DECREF(seq);
    return PyErr_Format(PyExc_ValueError, "concatenate: 1 to 8 arrays (%zd given)", n);
  }
  char attrs[32];
  snprintf(attrs, sizeof attrs, "axis=%d", axis);
  PyObject *r = apply("concat", (int)n, PySequence_Fast_ITEMS(seq), attrs);
  Py_DECREF(seq);
  return r;
}

#define REDUCE_FN(name)                                                                      \
  static PyObject *f_##name(PyObject *mod, PyObject *args, PyObject *kw) {                    \
    (void)mod;                                                                               \
    if (PyTuple_GET_SIZE(args) < 1) return PyErr_Format(PyExc_TypeError, #name "(a, axis=None, keepdims=False)"); \
    PyObject *a = PyTuple_GET_ITEM(args, 0), *rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));        \
    PyObject *arr = rest ? f_asarray(NULL, a) : NULL, *r = arr ? m_##name(arr, rest, kw) : NULL;            \
    Py_XDECREF(arr), Py_XDECREF(rest);                                                       \
    return r;                                                                                \
  }
REDUCE_FN(sum)
REDUCE_FN(mean)
REDUCE_FN(max)
REDUCE_FN(min)

static PyObject *f_sync(PyObject *mod, PyObject *unused) {
  (void)mod, (void)unused;
  dvm_context *c = context();
  if (!c || dvm_lazy_sync(c)) return c ? py_error() : NULL;
  Py_RETURN_NONE;
}

static PyObject *f_lazy_stats(PyObject *mod, PyObject *unused) {
  (void)mod, (void)unused;
  dvm_context *c = context();
  if (!c) return NULL;
  dvm_lazy_stats s;
  dvm_lazy_stats_get(c, &s);
  return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L}", "ops", (long long)s.ops, "flushes", (long long)s.flushes,
                       "hits", (long long)s.hits, "misses", (long long)s.misses, "variants", (long long)s.variants,
                       "evictions", (long long)s.evictions, "entries", (long long)s.entries, "bytes",
                       (long long)s.bytes);
}

static PyObject *f_lazy_options(PyObject *mod, PyObject *args, PyObject *kw) {
  (void)mod;
  static char *names[] = {"tier", "threads", "max_ops", NULL};
  const char *tier = "auto";
  int threads = 0, max_ops = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|sii", names, &tier, &threads, &max_ops)) return NULL;
  static const char *const tiers[] = {"auto", "vm", "llvm", "ref"};
  int t = 0;
  while (t < 4 && strcmp(tier, tiers[t])) t++;
  if (t == 4) return PyErr_Format(PyExc_ValueError, "tier '%s' (auto, vm, llvm, ref)", tier);
  dvm_context *c = context();
  dvm_lazy_options o = {.tier = (dvm_tier)t, .threads = threads, .max_ops = max_ops};
  if (!c || dvm_context_set_lazy_options(c, &o)) return c ? py_error() : NULL;
  Py_RETURN_NONE;
}

static PyObject *f_wait(PyObject *mod, PyObject *unused) {
  (void)mod, (void)unused;
  dvm_context *c = context();
  if (!c) return NULL;
  Py_BEGIN_ALLOW_THREADS dvm_lazy_wait(c);
  Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

#define FN1(name) {#name, f_##name, METH_O, #name "(a): a lazy array"}
#define FNV(name, doc) {#name, f_##name, METH_VARARGS, doc}
#define FNK(name, doc) {#name, (PyCFunction)(void (*)(void))f_##name, METH_VARARGS | METH_KEYWORDS, doc}
static PyMethodDef array_functions[] = {
    {"asarray", f_asarray, METH_O, "asarray(x): a lazy array over x's memory (no copy), or x if it is one"},
    FN1(exp), FN1(log), FN1(sqrt), FN1(rsqrt), FN1(reciprocal), FN1(tanh), FN1(sigmoid), FN1(relu), FN1(gelu),
    FN1(gelu_tanh), FN1(silu), FN1(erf), FN1(sin), FN1(cos), FN1(floor), FN1(ceil), FN1(round), FN1(sign),
    FN1(abs), FN1(negative),
    FNV(maximum, "maximum(a, b)"), FNV(minimum, "minimum(a, b)"), FNV(matmul, "matmul(a, b)"),
    FNV(power, "power(a, b)"), FNV(where, "where(cond, a, b)"), FNV(clip, "clip(a, lo, hi)"),
    FNK(softmax, "softmax(x, axis=-1)"), FNK(log_softmax, "log_softmax(x, axis=-1)"),
    FNK(layernorm, "layernorm(x, gamma, beta, axis=-1, eps=1e-5)"), FNK(rmsnorm, "rmsnorm(x, gamma, eps=1e-5)"),
    FNK(concatenate, "concatenate(arrays, axis=0)"),
    FNK(sum, "sum(a, axis=None, keepdims=False)"), FNK(mean, "mean(a, axis=None, keepdims=False)"),
    FNK(max, "max(a, axis=None, keepdims=False)"), FNK(min, "min(a, axis=None, keepdims=False)"),
    {"amax", (PyCFunction)(void (*)(void))f_max, METH_VARARGS | METH_KEYWORDS, "amax(a, axis=None, keepdims=False): max"},
    {"amin", (PyCFunction)(void (*)(void))f_min, METH_VARARGS | METH_KEYWORDS, "amin(a, axis=None, keepdims=False): min"},
    {"sync", f_sync, METH_NOARGS, "sync(): compute every pending array this thread holds"},
    {"wait", f_wait, METH_NOARGS, "wait(): wait for the native code of the compiled traces"},
    {"lazy_stats", f_lazy_stats, METH_NOARGS, "lazy_stats(): the trace cache's counters"},
    FNK(lazy_options, "lazy_options(tier='auto', threads=0, max_ops=0): settings of later flushes"),
    {NULL, NULL, 0, NULL}};

int py_array_init(PyObject *m) {
  if (PyType_Ready(&ArrayType) < 0) return -1;
  if (PyModule_AddObjectRef(m, "Array", (PyObject *)&ArrayType) < 0) return -1;
  return PyModule_AddFunctions(m, array_functions);
}
