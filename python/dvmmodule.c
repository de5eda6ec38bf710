/* python/dvmmodule.c — the Python module `dvm`: compiled models called with arrays.
 *
 *   m = dvm.Model("model.onnx")              # or a .dvm file, or graph text
 *   y = m(x=np.ones((4, 1024), np.float32))  # inputs by name (or in order): NumPy arrays out
 *   m(x=x, out=y)                            # into existing arrays
 *
 * Arrays come in through the buffer protocol (NumPy, array, memoryview; a C-contiguous
 * buffer is read in place, another is copied once) or DLPack (`__dlpack__`: torch, ...;
 * read in place), and go out as dvm.Tensor objects viewed by NumPy without a copy
 * (`numpy.asarray` over the tensor's buffer) or handed to other libraries with DLPack
 * (`torch.from_dlpack(t)`). A dvm error is a dvm.Error carrying dvm's message (graph line,
 * op, dims); a wrong dtype or argument is a TypeError or ValueError. Runs release the GIL:
 * several threads may call one model at once.
 *
 * The module is CPython's C API over include/dvm.h alone (it links libdvm.so). */
#include "dvmpy.h"

enum { MAXIO = 256 };

PyObject *DvmError;

PyObject *py_error(void) {
  PyErr_SetString(DvmError, dvm_last_error());
  return NULL;
}

/* ---- dtypes ------------------------------------------------------------------------------ */

const DLDataType py_dl_dtype[DVM_DTYPE_COUNT] = {
    [DVM_F32] = {kDLFloat, 32, 1}, [DVM_F16] = {kDLFloat, 16, 1}, [DVM_BF16] = {kDLBfloat, 16, 1},
    [DVM_I32] = {kDLInt, 32, 1},   [DVM_I64] = {kDLInt, 64, 1},   [DVM_BOOL] = {DL_BOOL, 8, 1},
    [DVM_F64] = {kDLFloat, 64, 1}, [DVM_I8] = {kDLInt, 8, 1},     [DVM_I16] = {kDLInt, 16, 1},
    [DVM_U8] = {kDLUInt, 8, 1},    [DVM_U16] = {kDLUInt, 16, 1},  [DVM_U32] = {kDLUInt, 32, 1},
    [DVM_U64] = {kDLUInt, 64, 1}};

/* The struct module's characters, of their standard sizes, which are the native ones on
 * the platforms dvm builds for (LP64: 'i' 'I' are 4 bytes, 'q' 'Q' 8). */
const char *py_format_of(dvm_dtype dt) {
  switch (dt) {
  case DVM_F32: return "f";
  case DVM_F16: return "e";
  case DVM_F64: return "d";
  case DVM_I8: return "b";
  case DVM_I16: return "h";
  case DVM_I32: return "i";
  case DVM_I64: return "q";
  case DVM_U8: return "B";
  case DVM_U16: return "H";
  case DVM_U32: return "I";
  case DVM_U64: return "Q";
  case DVM_BOOL: return "?";
  default: return NULL;
  }
}

/* The integer dtype of a size in bytes, from a table of the signed or unsigned ones. */
static int int_of_size(const int *by_log2, Py_ssize_t itemsize) {
  switch (itemsize) {
  case 1: return by_log2[0];
  case 2: return by_log2[1];
  case 4: return by_log2[2];
  case 8: return by_log2[3];
  default: return -1;
  }
}

/* Integer characters go by the item size, not the character: a C type's size varies ('l'
 * 'L' are 8 bytes on x86-64 Linux, 4 on 32-bit and Windows; NumPy names int64 'l' there
 * and 'q' elsewhere). A buffer without a format is unsigned bytes ('B'). */
int py_dtype_of(const char *format, Py_ssize_t itemsize) {
  static const int sints[4] = {DVM_I8, DVM_I16, DVM_I32, DVM_I64};
  static const int uints[4] = {DVM_U8, DVM_U16, DVM_U32, DVM_U64};
  if (!format) format = "B";
  if (*format == '<' || *format == '=' || *format == '@') format++;
  if (format[0] && format[1]) return -1;
  switch (format[0]) {
  case 'f': return itemsize == 4 ? DVM_F32 : -1;
  case 'e': return itemsize == 2 ? DVM_F16 : -1;
  case 'd': return itemsize == 8 ? DVM_F64 : -1;
  case 'b': case 'h': case 'i': case 'l': case 'q': case 'n':
    return int_of_size(sints, itemsize);
  case 'B': case 'H': case 'I': case 'L': case 'Q': case 'N':
    return int_of_size(uints, itemsize);
  case '?': return itemsize == 1 ? DVM_BOOL : -1;
  default: return -1;
  }
}

/* ---- dvm.Tensor: a dvm tensor as a Python object --------------------------------------- */

PyObject *py_tensor_new(dvm_tensor *t, PyObject *base) {
  TensorObject *o = PyObject_New(TensorObject, &TensorType);
  if (!o) return dvm_tensor_destroy(t), NULL;
  o->t = t;
  o->base = base;
  Py_XINCREF(base);
  int r = dvm_tensor_rank(t);
  Py_ssize_t stride = (Py_ssize_t)dvm_dtype_size(dvm_tensor_dtype(t));
  for (int i = r - 1; i >= 0; i--)
    o->shape[i] = (Py_ssize_t)dvm_tensor_shape(t)[i], o->strides[i] = stride, stride *= o->shape[i];
  return (PyObject *)o;
}

static void tensor_dealloc(TensorObject *o) {
  dvm_tensor_destroy(o->t);
  Py_XDECREF(o->base);
  Py_TYPE(o)->tp_free((PyObject *)o);
}

static int tensor_getbuffer(TensorObject *o, Py_buffer *view, int flags) {
  const char *fmt = py_format_of(dvm_tensor_dtype(o->t));
  if (!fmt) {
    PyErr_SetString(PyExc_BufferError, "a bf16 tensor has no buffer format: use DLPack (torch.from_dlpack)");
    return -1;
  }
  view->obj = (PyObject *)o;
  Py_INCREF(o);
  view->buf = dvm_tensor_data(o->t);
  view->itemsize = (Py_ssize_t)dvm_dtype_size(dvm_tensor_dtype(o->t));
  view->len = (Py_ssize_t)dvm_tensor_numel(o->t) * view->itemsize;
  view->readonly = 0;
  view->format = (flags & PyBUF_FORMAT) ? (char *)fmt : NULL;
  view->ndim = dvm_tensor_rank(o->t);
  view->shape = (flags & PyBUF_ND) ? o->shape : NULL;
  view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? o->strides : NULL;
  view->suboffsets = NULL;
  view->internal = NULL;
  return 0;
}

static PyBufferProcs tensor_buffer = {(getbufferproc)tensor_getbuffer, NULL};

/* DLPack out: the managed tensor holds a reference to the dvm.Tensor, released by its
 * deleter (under the GIL, whoever calls it). */
typedef struct {
  DLManagedTensor m;
  int64_t shape[DVM_MAX_RANK], strides[DVM_MAX_RANK];
} Export;

static void export_deleter(DLManagedTensor *m) {
  PyGILState_STATE s = PyGILState_Ensure();
  Py_XDECREF((PyObject *)m->manager_ctx);
  PyMem_RawFree(m);
  PyGILState_Release(s);
}

/* A capsule nobody consumed is deleted with its tensor. */
static void capsule_destructor(PyObject *cap) {
  if (!PyCapsule_IsValid(cap, "dltensor")) return; /* consumed: "used_dltensor" */
  DLManagedTensor *m = PyCapsule_GetPointer(cap, "dltensor");
  if (m && m->deleter) m->deleter(m);
}

static PyObject *tensor_dlpack(TensorObject *o, PyObject *args, PyObject *kw) {
  static char *names[] = {"stream", NULL};
  PyObject *stream = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", names, &stream)) return NULL;
  if (stream != Py_None) {
    PyErr_SetString(PyExc_ValueError, "dvm tensors live on the CPU: stream must be None");
    return NULL;
  }
  Export *x = PyMem_RawCalloc(1, sizeof *x);
  if (!x) return PyErr_NoMemory();
  int r = dvm_tensor_rank(o->t);
  int64_t stride = 1;
  for (int i = r - 1; i >= 0; i--) x->shape[i] = o->shape[i], x->strides[i] = stride, stride *= o->shape[i];
  x->m.dl_tensor = (DLTensor){.data = dvm_tensor_data(o->t), .device = {kDLCPU, 0}, .ndim = r,
                              .dtype = py_dl_dtype[dvm_tensor_dtype(o->t)], .shape = x->shape, .strides = x->strides};
  x->m.manager_ctx = o;
  x->m.deleter = export_deleter;
  Py_INCREF(o);
  PyObject *cap = PyCapsule_New(&x->m, "dltensor", capsule_destructor);
  if (!cap) Py_DECREF(o), PyMem_RawFree(x);
  return cap;
}

static PyObject *tensor_dlpack_device(PyObject *o, PyObject *unused) {
  (void)o, (void)unused;
  return Py_BuildValue("(ii)", kDLCPU, 0);
}

static PyObject *tensor_numpy(PyObject *o, PyObject *unused) {
  (void)unused;
  PyObject *np = PyImport_ImportModule("numpy");
  if (!np) return NULL;
  PyObject *a = PyObject_CallMethod(np, "asarray", "O", o);
  Py_DECREF(np);
  return a;
}

static PyObject *tensor_get_shape(TensorObject *o, void *unused) {
  (void)unused;
  int r = dvm_tensor_rank(o->t);
  PyObject *t = PyTuple_New(r);
  for (int i = 0; t && i < r; i++) PyTuple_SET_ITEM(t, i, PyLong_FromLongLong(dvm_tensor_shape(o->t)[i]));
  return t;
}

static PyObject *tensor_get_dtype(TensorObject *o, void *unused) {
  (void)unused;
  return PyUnicode_FromString(dvm_dtype_name(dvm_tensor_dtype(o->t)));
}

static PyObject *tensor_get_data_ptr(TensorObject *o, void *unused) {
  (void)unused;
  return PyLong_FromVoidPtr(dvm_tensor_data(o->t));
}

static PyMethodDef tensor_methods[] = {
    {"__dlpack__", (PyCFunction)(void (*)(void))tensor_dlpack, METH_VARARGS | METH_KEYWORDS,
     "A DLPack capsule over the tensor's memory (no copy)."},
    {"__dlpack_device__", tensor_dlpack_device, METH_NOARGS, "(kDLCPU, 0)."},
    {"numpy", tensor_numpy, METH_NOARGS, "A NumPy array over the tensor's memory (no copy)."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef tensor_getset[] = {
    {"shape", (getter)tensor_get_shape, NULL, "The shape, a tuple.", NULL},
    {"dtype", (getter)tensor_get_dtype, NULL, "The dtype's name: f32 f16 bf16 f64 i8 i16 i32 i64 u8 u16 u32 u64 bool.", NULL},
    {"data_ptr", (getter)tensor_get_data_ptr, NULL, "The address of the first element.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

PyTypeObject TensorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dvm.Tensor",
    .tp_basicsize = sizeof(TensorObject),
    .tp_dealloc = (destructor)tensor_dealloc,
    .tp_as_buffer = &tensor_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A dvm tensor: NumPy views it (numpy.asarray), other libraries take it with DLPack.",
    .tp_methods = tensor_methods,
    .tp_getset = tensor_getset,
};

/* ---- arrays in ---------------------------------------------------------------------------- */

void py_arg_release(Arg *a) {
  dvm_tensor_destroy(a->t);
  if (a->view.obj) PyBuffer_Release(&a->view);
  a->t = NULL;
}

int py_take_dlpack(PyObject *obj, const char *name, dvm_tensor **out) {
  if (!PyObject_HasAttrString(obj, "__dlpack__"))
    return PyErr_Format(PyExc_TypeError, "%s: a %s is neither a buffer nor a DLPack tensor", name,
                        Py_TYPE(obj)->tp_name), -1;
  PyObject *cap = PyObject_CallMethod(obj, "__dlpack__", NULL);
  if (!cap) return -1; /* the producer's own error (a tensor that requires grad, ...) */
  DLManagedTensor *m = PyCapsule_GetPointer(cap, "dltensor");
  if (!m) return Py_DECREF(cap), -1;
  if (dvm_tensor_from_dlpack(m, out)) { /* refused: the capsule still owns it */
    Py_DECREF(cap);
    return PyErr_Format(PyExc_ValueError, "%s: %s", name, dvm_last_error()), -1;
  }
  PyCapsule_SetName(cap, "used_dltensor"); /* ours now: destroying *out calls the deleter */
  Py_DECREF(cap);
  return 0;
}

int py_arg_from(PyObject *obj, const char *name, int want, Arg *a) {
  memset(a, 0, sizeof *a);
  if (PyObject_TypeCheck(obj, &TensorType)) { /* a dvm.Tensor: wrapped, kept alive by obj */
    dvm_tensor *t = ((TensorObject *)obj)->t;
    if (want >= 0 && (int)dvm_tensor_dtype(t) != want)
      return PyErr_Format(PyExc_TypeError, "%s: a %s tensor where %s is expected", name,
                          dvm_dtype_name(dvm_tensor_dtype(t)), dvm_dtype_name((dvm_dtype)want)), -1;
    if (dvm_tensor_wrap(dvm_tensor_dtype(t), dvm_tensor_rank(t), dvm_tensor_shape(t), dvm_tensor_data(t), &a->t))
      return py_error(), -1;
    return 0;
  }
  if (PyObject_CheckBuffer(obj)) {
    if (PyObject_GetBuffer(obj, &a->view, PyBUF_RECORDS_RO)) return -1;
    Py_buffer *v = &a->view;
    int dt = py_dtype_of(v->format, v->itemsize);
    if (dt < 0 || (want >= 0 && dt != want)) {
      PyErr_Format(PyExc_TypeError, "%s: an array of format '%s' (%zd bytes per item) where %s is expected", name,
                   v->format ? v->format : "B", v->itemsize,
                   want >= 0 ? dvm_dtype_name((dvm_dtype)want) : "f32, f16, f64, i8, i16, i32, i64, u8, u16, u32, u64 or bool");
      return py_arg_release(a), -1;
    }
    if (v->ndim > DVM_MAX_RANK) {
      PyErr_Format(PyExc_ValueError, "%s: rank %d (at most %d)", name, v->ndim, DVM_MAX_RANK);
      return py_arg_release(a), -1;
    }
    int64_t shape[DVM_MAX_RANK];
    for (int i = 0; i < v->ndim; i++) shape[i] = v->shape ? v->shape[i] : v->len / v->itemsize;
    if (PyBuffer_IsContiguous(v, 'C')) {
      if (dvm_tensor_wrap((dvm_dtype)dt, v->ndim, shape, v->buf, &a->t)) return py_error(), py_arg_release(a), -1;
      return 0;
    }
    /* strided: one C-ordered copy */
    if (dvm_tensor_create((dvm_dtype)dt, v->ndim, shape, &a->t)) return py_error(), py_arg_release(a), -1;
    if (PyBuffer_ToContiguous(dvm_tensor_data(a->t), v, v->len, 'C')) return py_arg_release(a), -1;
    a->copied = true;
    PyBuffer_Release(v);
    v->obj = NULL;
    return 0;
  }
  if (py_take_dlpack(obj, name, &a->t)) return -1;
  if (want >= 0 && (int)dvm_tensor_dtype(a->t) != want) {
    PyErr_Format(PyExc_TypeError, "%s: a %s tensor where %s is expected", name,
                 dvm_dtype_name(dvm_tensor_dtype(a->t)), dvm_dtype_name((dvm_dtype)want));
    return py_arg_release(a), -1;
  }
  return 0;
}

static PyObject *from_dlpack(PyObject *self, PyObject *obj) {
  (void)self;
  dvm_tensor *t;
  if (py_take_dlpack(obj, "from_dlpack", &t)) return NULL;
  return py_tensor_new(t, NULL);
}

/* ---- dvm.Model ------------------------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  dvm_context *ctx;
  dvm_model *m;
  PyObject *params;     /* dict: param name -> the object bound (its memory is read by runs) */
  Arg param_arg[MAXIO]; /* per param (the model's order): the tensor bound over it */
  int running;          /* runs in flight (changed with the GIL held): a param is not rebound
                           under a run that reads it */
} ModelObject;

static const char *const tier_names[] = {"auto", "vm", "llvm", "ref"};

static int model_init(ModelObject *self, PyObject *args, PyObject *kw) {
  static char *names[] = {"source", "tier", "threads", NULL};
  const char *src, *tier = "auto";
  Py_ssize_t n;
  int threads = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s#|si", names, &src, &n, &tier, &threads)) return -1;
  dvm_compile_options o = {DVM_TIER_AUTO, threads};
  int t = 0;
  while (t < 4 && strcmp(tier, tier_names[t])) t++;
  if (t == 4) return PyErr_Format(PyExc_ValueError, "tier '%s': one of auto, vm, llvm, ref", tier), -1;
  o.tier = (dvm_tier)t;
  if (threads < 0) return PyErr_Format(PyExc_ValueError, "threads %d: 0 (one per core) or more", threads), -1;
  if (self->m) return PyErr_Format(PyExc_RuntimeError, "Model.__init__ called twice"), -1;
  bool text = memchr(src, '\n', (size_t)n) != NULL;
  bool onnx = !text && n > 5 && !strcmp(src + n - 5, ".onnx");
  dvm_status s;
  Py_BEGIN_ALLOW_THREADS
  s = dvm_context_create(&self->ctx);
  if (!s && onnx) s = dvm_model_load_onnx(self->ctx, src, &o, &self->m);
  else if (!s) {
    dvm_graph *g;
    s = text ? dvm_graph_parse(self->ctx, src, (size_t)n, "<text>", &g) : dvm_graph_load(self->ctx, src, &g);
    if (!s) s = dvm_model_compile(self->ctx, g, &o, &self->m), dvm_graph_destroy(g);
  }
  Py_END_ALLOW_THREADS
  if (s) return py_error(), -1;
  if (!(self->params = PyDict_New())) return -1;
  return 0;
}

static void model_dealloc(ModelObject *self) {
  if (self->m) {
    Py_BEGIN_ALLOW_THREADS
    dvm_model_destroy(self->m);
    dvm_context_destroy(self->ctx);
    Py_END_ALLOW_THREADS
  } else if (self->ctx) dvm_context_destroy(self->ctx);
  for (int i = 0; i < MAXIO; i++) py_arg_release(&self->param_arg[i]);
  Py_XDECREF(self->params);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static int ready(ModelObject *self) {
  if (self->m) return 0;
  PyErr_SetString(PyExc_RuntimeError, "the Model is not initialized");
  return -1;
}

/* Bind param p to obj for later runs: the model reads its memory from then on (the
 * binding it replaces is released). */
static int set_param(ModelObject *self, int p, PyObject *obj) {
  const char *name = dvm_model_param_name(self->m, p);
  if (self->running)
    return PyErr_Format(PyExc_RuntimeError, "param '%s': the model is running on another thread (bind params "
                        "before the runs, or between them)", name), -1;
  if (p >= MAXIO) return PyErr_Format(PyExc_ValueError, "%s: more than %d params", name, MAXIO), -1;
  Arg a;
  if (py_arg_from(obj, name, dvm_model_value_dtype(self->m, name), &a)) return -1;
  if (dvm_model_set_param(self->m, name, a.t)) return py_error(), py_arg_release(&a), -1;
  py_arg_release(&self->param_arg[p]);
  self->param_arg[p] = a;
  return PyDict_SetItemString(self->params, name, obj);
}

/* The index of param `name`, or -1. */
static int param_index(const dvm_model *m, const char *name) {
  for (int p = 0; p < dvm_model_num_params(m); p++)
    if (!strcmp(dvm_model_param_name(m, p), name)) return p;
  return -1;
}

static PyObject *model_set_param(ModelObject *self, PyObject *args) {
  const char *name;
  PyObject *obj;
  if (ready(self) || !PyArg_ParseTuple(args, "sO", &name, &obj)) return NULL;
  int p = param_index(self->m, name);
  if (p < 0) return PyErr_Format(PyExc_KeyError, "'%s' is not a param of the model", name);
  if (set_param(self, p, obj)) return NULL;
  Py_RETURN_NONE;
}

/* model(*inputs, out=None, **inputs_and_params) */
static PyObject *model_call(ModelObject *self, PyObject *args, PyObject *kw) {
  if (ready(self)) return NULL;
  dvm_model *m = self->m;
  int nin = dvm_model_num_inputs(m), nout = dvm_model_num_outputs(m);
  if (nin > MAXIO || nout > MAXIO) return PyErr_Format(PyExc_ValueError, "more than %d inputs or outputs", MAXIO);
  PyObject *in_obj[MAXIO] = {0}, *out = NULL;
  Py_ssize_t npos = PyTuple_GET_SIZE(args);
  if (npos > nin) return PyErr_Format(PyExc_TypeError, "%zd positional inputs for a model of %d", npos, nin);
  for (Py_ssize_t i = 0; i < npos; i++) in_obj[i] = PyTuple_GET_ITEM(args, i);
  PyObject *key, *val;
  Py_ssize_t pos = 0;
  while (kw && PyDict_Next(kw, &pos, &key, &val)) {
    const char *k = PyUnicode_AsUTF8(key);
    if (!k) return NULL;
    if (!strcmp(k, "out")) {
      out = val;
      continue;
    }
    int i = 0;
    while (i < nin && strcmp(dvm_model_input_name(m, i), k)) i++;
    if (i < nin) {
      if (in_obj[i]) return PyErr_Format(PyExc_TypeError, "input '%s' given twice", k);
      in_obj[i] = val;
      continue;
    }
    int p = param_index(m, k);
    if (p < 0) return PyErr_Format(PyExc_TypeError, "'%s' is not an input or param of the model", k);
    PyObject *bound = PyDict_GetItemString(self->params, k);
    if (bound != val && set_param(self, p, val)) return NULL; /* the same object: bound already */
  }
  for (int i = 0; i < nin; i++)
    if (!in_obj[i]) return PyErr_Format(PyExc_TypeError, "input '%s' is missing", dvm_model_input_name(m, i));
  PyObject *outs[MAXIO] = {0}, *seq = NULL; /* seq holds the items of a sequence out */
  if (out && out != Py_None) { /* one array, or a sequence of nout */
    if (nout == 1 && (PyObject_CheckBuffer(out) || PyObject_TypeCheck(out, &TensorType))) outs[0] = out;
    else {
      if (!(seq = PySequence_Fast(out, "out: an array, or a sequence of one per output"))) return NULL;
      if (PySequence_Fast_GET_SIZE(seq) != nout) {
        PyErr_Format(PyExc_ValueError, "out: %d arrays for %d outputs", (int)PySequence_Fast_GET_SIZE(seq), nout);
        Py_DECREF(seq);
        return NULL;
      }
      for (int i = 0; i < nout; i++) outs[i] = PySequence_Fast_GET_ITEM(seq, i);
    }
  }
  Arg in[MAXIO], into[MAXIO];
  const char *names[MAXIO];
  int got = 0, got_out = 0;
  PyObject *result = NULL;
  for (; got < nin; got++) {
    names[got] = dvm_model_input_name(m, got);
    if (py_arg_from(in_obj[got], names[got], dvm_model_value_dtype(m, names[got]), &in[got])) goto done;
  }
  dvm_tensor *ts[MAXIO], *res[MAXIO] = {0};
  for (int i = 0; i < nin; i++) ts[i] = in[i].t;
  dvm_status s;
  if (outs[0]) {
    for (; got_out < nout; got_out++) {
      const char *on = dvm_model_output_name(m, got_out);
      if (py_arg_from(outs[got_out], on, dvm_model_value_dtype(m, on), &into[got_out])) goto done;
      if (into[got_out].copied) {
        PyErr_Format(PyExc_ValueError, "out: '%s' must be a C-contiguous array", on);
        got_out++;
        goto done;
      }
      if (into[got_out].view.obj && into[got_out].view.readonly) {
        PyErr_Format(PyExc_ValueError, "out: '%s' is read-only", on);
        got_out++;
        goto done;
      }
      res[got_out] = into[got_out].t;
    }
    self->running++;
    Py_BEGIN_ALLOW_THREADS
    s = dvm_model_run_into(m, nin, names, ts, res);
    Py_END_ALLOW_THREADS
    self->running--;
    if (s) {
      py_error();
      goto done;
    }
    if (!seq) result = Py_NewRef(outs[0]);
    else result = PySequence_Tuple(seq);
    goto done;
  }
  self->running++;
  Py_BEGIN_ALLOW_THREADS
  s = dvm_model_run(m, nin, names, ts, res);
  Py_END_ALLOW_THREADS
  self->running--;
  if (s) {
    py_error();
    goto done;
  }
  PyObject *arrays[MAXIO] = {0};
  bool ok = true;
  for (int i = 0; i < nout; i++) {
    PyObject *t = ok ? py_tensor_new(res[i], NULL) : (dvm_tensor_destroy(res[i]), NULL);
    if (!t) {
      ok = false;
      continue;
    }
    /* a NumPy array over it where NumPy can hold the dtype; the dvm.Tensor else (bf16) */
    arrays[i] = py_format_of(dvm_tensor_dtype(res[i])) ? tensor_numpy(t, NULL) : Py_NewRef(t);
    Py_DECREF(t);
    ok = arrays[i] != NULL;
  }
  if (ok) result = nout == 1 ? Py_NewRef(arrays[0]) : PyTuple_New(nout);
  for (int i = 0; i < nout; i++) {
    if (result && nout > 1) PyTuple_SET_ITEM(result, i, arrays[i]);
    else Py_XDECREF(arrays[i]);
  }
done:
  for (int i = 0; i < got; i++) py_arg_release(&in[i]);
  for (int i = 0; i < got_out; i++) py_arg_release(&into[i]);
  Py_XDECREF(seq);
  return result;
}

static PyObject *names_list(const dvm_model *m, int n, const char *(*name)(const dvm_model *, int)) {
  PyObject *l = PyList_New(n);
  for (int i = 0; l && i < n; i++) PyList_SET_ITEM(l, i, PyUnicode_FromString(name(m, i)));
  return l;
}

static PyObject *model_get_inputs(ModelObject *self, void *unused) {
  (void)unused;
  return ready(self) ? NULL : names_list(self->m, dvm_model_num_inputs(self->m), dvm_model_input_name);
}
static PyObject *model_get_outputs(ModelObject *self, void *unused) {
  (void)unused;
  return ready(self) ? NULL : names_list(self->m, dvm_model_num_outputs(self->m), dvm_model_output_name);
}
static PyObject *model_get_params(ModelObject *self, void *unused) {
  (void)unused;
  return ready(self) ? NULL : names_list(self->m, dvm_model_num_params(self->m), dvm_model_param_name);
}
static PyObject *model_get_symbols(ModelObject *self, void *unused) {
  (void)unused;
  return ready(self) ? NULL : names_list(self->m, dvm_model_num_symbols(self->m), dvm_model_symbol_name);
}

static PyObject *model_stats(ModelObject *self, PyObject *unused) {
  (void)unused;
  if (ready(self)) return NULL;
  dvm_stats s;
  dvm_model_stats(self->m, &s);
  return Py_BuildValue("{sLsLsLsLsLsLsdsdsdsdsLsLsLsLsLsLsLsLsL}", "kernels", (long long)s.kernels, "native_kernels",
                       (long long)s.native_kernels, "cache_hits", (long long)s.cache_hits, "cache_misses",
                       (long long)s.cache_misses, "vm_encodes", (long long)s.vm_encodes, "llvm_compiles",
                       (long long)s.llvm_compiles, "encode_us", s.encode_us, "lower_us", s.lower_us, "compile_ms",
                       s.compile_ms, "run_us", s.run_us, "runs", (long long)s.runs, "plan_hits",
                       (long long)s.plan_hits, "plan_misses", (long long)s.plan_misses, "disk_hits",
                       (long long)s.disk_hits, "disk_misses", (long long)s.disk_misses, "disk_writes",
                       (long long)s.disk_writes, "disk_rejects", (long long)s.disk_rejects, "code_bytes",
                       (long long)s.code_bytes, "code_evictions", (long long)s.code_evictions);
}

static PyObject *model_wait(ModelObject *self, PyObject *unused) {
  (void)unused;
  if (ready(self)) return NULL;
  Py_BEGIN_ALLOW_THREADS
  dvm_model_wait(self->m);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static PyMethodDef model_methods[] = {
    {"set_param", (PyCFunction)model_set_param, METH_VARARGS,
     "set_param(name, array): bind a param for later runs (the model reads its memory)."},
    {"stats", (PyCFunction)model_stats, METH_NOARGS, "Counters since the model was compiled (a dict)."},
    {"wait", (PyCFunction)model_wait, METH_NOARGS, "Wait for the auto tier's background compiles."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef model_getset[] = {
    {"inputs", (getter)model_get_inputs, NULL, "Input names, in order.", NULL},
    {"outputs", (getter)model_get_outputs, NULL, "Output names, in order.", NULL},
    {"params", (getter)model_get_params, NULL, "Param names (bound with set_param or by keyword).", NULL},
    {"symbols", (getter)model_get_symbols, NULL, "The free symbols (bound from input shapes).", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject ModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dvm.Model",
    .tp_basicsize = sizeof(ModelObject),
    .tp_dealloc = (destructor)model_dealloc,
    .tp_call = (ternaryfunc)model_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Model(source, tier='auto', threads=0): a .dvm or .onnx file, or graph text, compiled.\n"
              "Call it with arrays by input name (or in order); params by name, once or per call.",
    .tp_methods = model_methods,
    .tp_getset = model_getset,
    .tp_init = (initproc)model_init,
    .tp_new = PyType_GenericNew,
};

/* ---- the module -------------------------------------------------------------------------------- */

static PyMethodDef module_methods[] = {
    {"from_dlpack", from_dlpack, METH_O, "from_dlpack(x): a dvm.Tensor over a DLPack tensor's memory (no copy)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "dvm",
                                    "dvm: a real-time operator compiler for dynamic-shape inference.", -1,
                                    module_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_dvm(void) {
  if (PyType_Ready(&TensorType) < 0 || PyType_Ready(&ModelType) < 0) return NULL;
  PyObject *mod = PyModule_Create(&module);
  if (!mod) return NULL;
  DvmError = PyErr_NewException("dvm.Error", PyExc_RuntimeError, NULL);
  if (PyModule_AddObjectRef(mod, "Error", DvmError) < 0 ||
      PyModule_AddObjectRef(mod, "Tensor", (PyObject *)&TensorType) < 0 ||
      PyModule_AddObjectRef(mod, "Model", (PyObject *)&ModelType) < 0 || py_array_init(mod) < 0) {
    Py_DECREF(mod);
    return NULL;
  }
  return mod;
}
