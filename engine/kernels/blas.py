"""GEMM inside Numba kernels on the OpenBLAS of the ``scipy-openblas64`` package.

Numba's ``np.dot`` calls the BLAS that SciPy's wheel bundles, often an older OpenBLAS than
the one published on its own (``scipy-openblas64``, the build numpy and SciPy are made
with). Thin products differ most. One thread, inside a Numba loop, Numba's ``np.dot``
(SciPy 1.17's OpenBLAS 0.3.30) → :func:`gemm` (0.3.34): 16×147 @ 147×576 (a 7×7 stem's
forward per image) 48.6 → 34.5 µs, 64×2048 @ 2048×512 (a CNN's first FC layer) 1931 → 1515,
64×576 @ 576×144 135 → 116; 384×128 @ 128×512 (the GPT's) 497 → 486; none slower beyond
noise among 26 shapes of the conv, Winograd and FC kernels.

:func:`gemm` computes ``out = a @ b`` (+ ``out`` where *accumulate*) for 2-D float32/float64
operands with unit stride along either axis (C-contiguous arrays, their transposes, and row
or column blocks of either; anything else raises ValueError), so a kernel can write into
blocks of a larger output without a copy. Compiling it adds little to a kernel (the conv
backward's parallel kernel: 13 → 15 s). The library's sgemm/dgemm are registered with
LLVM under names of our own (:data:`SYMBOLS`) when this module is imported, so cached
kernels find them by name in a later process. The library runs on one thread (kernels call
it from their workers); threadpoolctl sees it like any other BLAS.
"""

from __future__ import annotations

import ctypes
import os

from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# our symbol name → the library's (CBLAS, 64-bit integers)
SYMBOLS = {"wiregrad_sgemm": "scipy_cblas_sgemm64_", "wiregrad_dgemm": "scipy_cblas_dgemm64_"}
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def library_path() -> str:
    """The shared library of ``scipy-openblas64`` (``.so``, ``.dylib`` or ``.dll``)."""
    import scipy_openblas64

    lib_dir, name = scipy_openblas64.get_lib_dir(), scipy_openblas64.get_library()
    for folder in (lib_dir, os.path.join(os.path.dirname(lib_dir), "bin")):
        for ext in (".so", ".dylib", ".dll"):
            for candidate in (f"lib{name}{ext}", f"{name}{ext}"):
                path = os.path.join(folder, candidate)
                if os.path.exists(path):
                    return path
    raise ImportError(f"scipy-openblas64 has no shared library {name} in {lib_dir}")


def _load() -> ctypes.CDLL:
    """Open the library, run it on one thread and register its GEMMs under :data:`SYMBOLS`."""
    lib = ctypes.CDLL(library_path())
    one_thread(lib)
    for ours, theirs in SYMBOLS.items():
        llvm.add_symbol(ours, ctypes.cast(getattr(lib, theirs), ctypes.c_void_p).value)
    return lib


def one_thread(lib: ctypes.CDLL | None = None) -> None:
    """Run the library on one thread (it is called from each parallel kernel's workers; a
    ``threadpool_limits`` call for the whole process may have raised it)."""
    (lib or LIBRARY).scipy_openblas_set_num_threads64_(ctypes.c_int(1))


LIBRARY = _load()


@intrinsic
def _cblas_gemm(typingctx, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """C (M×N, row-major, leading dimension ldc) = op(A) @ op(B) + beta·C, all of one float
    dtype; the arrays give their data pointers (the offsets of any view included)."""
    dtype = c.dtype
    if dtype not in (types.float32, types.float64) or a.dtype != dtype or b.dtype != dtype:
        return None
    i64 = types.int64
    sig = types.void(i64, i64, i64, i64, i64, a, i64, b, i64, dtype, c, i64)

    def codegen(context, builder, signature, args):
        ta, tb, mm, nn, kk, aa, la, bb, lb, be, cc, lc = args
        f = ir.FloatType() if dtype == types.float32 else ir.DoubleType()
        i32, i64_ = ir.IntType(32), ir.IntType(64)
        ptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64_, i64_, i64_, f, ptr, i64_,
                                               ptr, i64_, f, ptr, i64_])
        name = "wiregrad_sgemm" if dtype == types.float32 else "wiregrad_dgemm"
        fn = cgutils.get_or_insert_function(builder.module, fnty, name)

        def data(ty, val):
            return builder.bitcast(context.make_array(ty)(context, builder, val).data, ptr)

        as32 = [builder.trunc(v, i32) for v in (ta, tb)]
        builder.call(fn, [ir.Constant(i32, ROW_MAJOR), *as32, mm, nn, kk, ir.Constant(f, 1.0),
                          data(signature.args[5], aa), la, data(signature.args[7], bb), lb, be,
                          data(signature.args[10], cc), lc])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def _operand(x):
    # (transpose flag, leading dimension) of x (R, C) as a row-major BLAS operand, or (0, 0)
    # when it is none (no unit stride, or rows that overlap: broadcast, negative strides)
    size = x.itemsize
    rows, cols = x.shape
    if rows == 0 or cols == 0:  # (numpy gives empty arrays zero strides)
        return NO_TRANS, max(cols, 1)
    if x.strides[0] % size or x.strides[1] % size:
        return 0, 0
    s0, s1 = x.strides[0] // size, x.strides[1] // size
    if (cols == 1 or s1 == 1) and (rows == 1 or s0 >= cols):
        return NO_TRANS, max(cols, 1) if rows == 1 else s0
    if (rows == 1 or s0 == 1) and (cols == 1 or s1 >= rows):
        return TRANS, max(rows, 1) if cols == 1 else s1
    return 0, 0


@njit(cache=True, nogil=True)
def gemm(a, b, out, accumulate=False):
    """out (M, N) = a (M, K) @ b (K, N), or += where *accumulate*. *a* and *b* need a unit
    stride along either axis (C-contiguous matrices, their transposes, row and column blocks
    of either), *out* along its rows; anything else raises ValueError (copy it first)."""
    m, k = a.shape
    n = b.shape[1]
    ta, lda = _operand(a)
    tb, ldb = _operand(b)
    tc, ldc = _operand(out)
    if ta == 0 or tb == 0 or tc != NO_TRANS or b.shape[0] != k or out.shape[0] != m \
            or out.shape[1] != n:
        raise ValueError("gemm: operands need a unit stride along one axis (out: along its "
                         "rows) and shapes (M, K) @ (K, N) → (M, N)")
    if m == 0 or n == 0:
        return
    if k == 0:
        if not accumulate:
            out[...] = 0
        return
    _cblas_gemm(ta, tb, m, n, k, a, lda, b, ldb, 1.0 if accumulate else 0.0, out,  # type: ignore[call-arg]
                ldc)
