/* python/dvmpy.h — what the Python module's files share (dvmmodule.c: the module, tensors,
 * arguments, models; array.c: lazy arrays). CPython's C API over include/dvm.h alone. */
#ifndef DVM_PY_H
#define DVM_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlpack/dlpack.h>
#include <stdbool.h>
#include <string.h>

#include "dvm.h"

enum { DL_BOOL = 6 /* kDLBool */ };

/* dvm.Error, and raising it with dvm's last error (returns NULL). */
extern PyObject *DvmError;
PyObject *py_error(void);

/* The buffer-protocol format of a dtype (NULL for bf16, which has none); the dtype of a
 * buffer's format and item size, or -1 (integer characters, signed 'b' 'h' 'i' 'l' 'q'
 * or unsigned 'B' 'H' 'I' 'L' 'Q', by item size); DLPack's dtype of each. */
const char *py_format_of(dvm_dtype dt);
int py_dtype_of(const char *format, Py_ssize_t itemsize);
extern const DLDataType py_dl_dtype[DVM_DTYPE_COUNT];

/* dvm.Tensor: a dvm tensor as a Python object (buffer protocol, DLPack). */
typedef struct {
  PyObject_HEAD
  dvm_tensor *t;
  PyObject *base; /* kept alive while the tensor is: the owner of t's memory, or NULL */
  Py_ssize_t shape[DVM_MAX_RANK], strides[DVM_MAX_RANK];
} TensorObject;
extern PyTypeObject TensorType;
/* A new dvm.Tensor owning t (destroyed with it) and holding a reference to base (may be
 * NULL); t is destroyed on failure. */
PyObject *py_tensor_new(dvm_tensor *t, PyObject *base);

/* One argument as a dvm tensor (and what keeps its memory alive until the run is over). */
typedef struct Arg {
  dvm_tensor *t;
  Py_buffer view; /* view.obj != NULL: a buffer held */
  bool copied;    /* t owns a C-ordered copy of a strided buffer */
} Arg;
/* obj as a tensor of dtype want (-1: any) for the value `name`: a dvm.Tensor, a buffer (a
 * C-contiguous one read in place, else copied once), or a DLPack producer; 0, or -1 with an
 * exception set. */
int py_arg_from(PyObject *obj, const char *name, int want, Arg *a);
void py_arg_release(Arg *a);
/* obj's __dlpack__ capsule taken into *out (the dvm tensor owns the DLPack tensor from then
 * on); 0, or -1 with an exception set. */
int py_take_dlpack(PyObject *obj, const char *name, dvm_tensor **out);

/* array.c: dvm.Array and the module's lazy functions, added to module m. */
int py_array_init(PyObject *m);

#endif
