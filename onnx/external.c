/* onnx/external.c — initializers whose bytes live in a file beside the model (ONNX's
 * external data: TensorProto.external_data with "location", "offset" and "length"), the
 * only way ONNX stores a model above protobuf's 2 GB.
 *
 * The location is confined to the model's directory: an absolute path, a path that leaves
 * the directory (through "..", or a symbolic link to somewhere else) is an error naming the
 * tensor, as is a file that is not a regular file or is shorter than offset + length. The
 * check is on the resolved path (realpath of the directory and of the file), so no
 * spelling of a path gets around it.
 *
 * The bytes are mapped (mmap, private and copy-on-write) when the offset keeps the elements
 * aligned, so a large model costs page cache shared between processes rather than a copy;
 * the tensor owns the mapping through a DLPack deleter. Otherwise they are read. */
#include <dlpack/dlpack.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.h"

typedef struct Mapping {
  DLManagedTensor m;
  void *base;
  size_t len;
  int64_t shape[DVM_MAX_RANK];
} Mapping;

static void unmap(DLManagedTensor *self) {
  Mapping *p = (Mapping *)self;
  munmap(p->base, p->len);
  free(p);
}

static bool parse_u64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  if (!s || !*s || *s == '-' || *s == '+') return false;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || v > (unsigned long long)INT64_MAX) return false;
  *out = (int64_t)v;
  return true;
}

/* The DLPack type of dvm dtype dt (not bool: bools are read, to normalize them). */
static DLDataType dl_type(DType dt) {
  return dt == DT_BF16 ? (DLDataType){kDLBfloat, 16, 1}
       : dt == DT_I32 || dt == DT_I64 ? (DLDataType){kDLInt, (uint8_t)(8 * ir_dtype_size(dt)), 1}
                                      : (DLDataType){kDLFloat, (uint8_t)(8 * ir_dtype_size(dt)), 1};
}

/* A tensor over bytes [off, off + need) of the open file fd, mapped; NULL (nothing set) when
 * mapping fails, so the caller reads instead. */
static dvm_tensor *map_tensor(int fd, int64_t off, size_t need, DType dt, int rank, const int64_t *shape) {
  long page = sysconf(_SC_PAGESIZE);
  int64_t start = off - off % (page > 0 ? page : 4096);
  size_t len = (size_t)(off - start) + need;
  void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, start);
  Mapping *p = base == MAP_FAILED ? NULL : calloc(1, sizeof *p);
  dvm_tensor *t = NULL;
  if (!p) {
    if (base != MAP_FAILED) munmap(base, len);
    return NULL;
  }
  p->base = base, p->len = len;
  memcpy(p->shape, shape, (size_t)rank * sizeof *shape);
  p->m.dl_tensor = (DLTensor){.data = (char *)base + (off - start), .device = {kDLCPU, 0}, .ndim = rank,
                              .dtype = dl_type(dt), .shape = p->shape};
  p->m.deleter = unmap;
  if (dvm_tensor_from_dlpack(&p->m, &t)) { /* not a layout dvm takes: read instead */
    unmap(&p->m);
    return NULL;
  }
  return t;
}

dvm_status onnx_external(Imp *I, const Onnx__TensorProto *tp, const char *what, DType dt, int rank,
                         const int64_t *shape, int64_t numel, dvm_tensor **out) {
  const char *loc = NULL, *offs = NULL, *lens = NULL;
  int64_t off = 0, length = -1;
  *out = NULL;
  for (size_t i = 0; i < tp->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = tp->external_data[i];
    if (!e || !e->key) continue;
    if (!strcmp(e->key, "location")) loc = e->value;
    else if (!strcmp(e->key, "offset")) offs = e->value;
    else if (!strcmp(e->key, "length")) lens = e->value;
  }
  if (!loc || !*loc) return onnx_fail(I, DVM_ERR_DATA, "%s: external data without a location", what);
  if ((offs && !parse_u64(offs, &off)) || (lens && !parse_u64(lens, &length)))
    return onnx_fail(I, DVM_ERR_DATA, "%s: external data offset '%s' or length '%s' is not a byte count", what,
                     offs ? offs : "", lens ? lens : "");
  if (loc[0] == '/')
    return onnx_fail(I, DVM_ERR_DATA, "%s: external data location '%s' is absolute: it must be relative to the "
                     "model's directory", what, loc);
  if (!I->path)
    return onnx_fail(I, DVM_ERR_USAGE, "%s: external data '%s' is resolved beside the model file: load the model "
                     "from its path (or give its path as the file name)", what, loc);
  /* the model's directory, resolved; the file, resolved; the one inside the other */
  char dir[PATH_MAX], rdir[PATH_MAX], full[2 * PATH_MAX + 2], rfile[PATH_MAX];
  const char *slash = strrchr(I->path, '/');
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - I->path) : 1, slash ? I->path : ".");
  if (slash == I->path) snprintf(dir, sizeof dir, "/");
  if (!realpath(dir, rdir))
    return onnx_fail(I, DVM_ERR_IO, "%s: the model's directory '%s': %s", what, dir, strerror(errno));
  snprintf(full, sizeof full, "%s/%s", rdir, loc);
  if (!realpath(full, rfile))
    return onnx_fail(I, DVM_ERR_IO, "%s: external data '%s': %s", what, loc, strerror(errno));
  size_t nd = strlen(rdir);
  bool root = nd == 1; /* the model sits in "/" */
  if (strncmp(rfile, rdir, nd) || (!root && rfile[nd] != '/'))
    return onnx_fail(I, DVM_ERR_DATA, "%s: external data '%s' is outside the model's directory (it resolves to "
                     "'%s')", what, loc, rfile);
  size_t esz = ir_dtype_size(dt);
  int64_t need;
  if (__builtin_mul_overflow(numel, (int64_t)esz, &need))
    return onnx_fail(I, DVM_ERR_OVERFLOW, "%s: element count overflows", what);
  if (length >= 0 && length != need)
    return onnx_fail(I, DVM_ERR_DATA, "%s: external data length %lld, its shape needs %lld bytes", what,
                     (long long)length, (long long)need);
  int fd = open(rfile, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) return onnx_fail(I, DVM_ERR_IO, "%s: external data '%s': %s", what, loc, strerror(errno));
  dvm_status rc = DVM_OK;
  int64_t end;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode))
    rc = onnx_fail(I, DVM_ERR_IO, "%s: external data '%s' is not a regular file", what, loc);
  else if (__builtin_add_overflow(off, need, &end) || end > st.st_size)
    rc = onnx_fail(I, DVM_ERR_DATA, "%s: external data '%s' has %lld bytes, the tensor needs %lld from offset %lld",
                   what, loc, (long long)st.st_size, (long long)need, (long long)off);
  else if (need > 0 && dt != DT_BOOL && off % (int64_t)esz == 0 &&
           (*out = map_tensor(fd, off, (size_t)need, dt, rank, shape)))
    rc = DVM_OK;
  else if (!(*out = onnx_tensor_new(I, dt, rank, shape, what)))
    rc = I->err->code;
  else { /* read */
    char *p = dvm_tensor_data(*out);
    for (int64_t done = 0; done < need;) {
      ssize_t k = pread(fd, p + done, (size_t)(need - done), off + done);
      if (k <= 0) {
        rc = onnx_fail(I, DVM_ERR_IO, "%s: reading external data '%s': %s", what, loc,
                       k < 0 ? strerror(errno) : "unexpected end of file");
        dvm_tensor_destroy(*out), *out = NULL;
        break;
      }
      done += k;
    }
  }
  close(fd);
  return rc;
}
