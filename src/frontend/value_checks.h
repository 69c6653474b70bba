// Run-time checks of the values that select memory: indices and integer divisors.
//
// TVM's gathers and scatters read and write wherever an index points, and an integer division
// by zero traps; PyTorch raises instead. Every converter that reads or writes through indices
// a caller can send, or divides integers, routes them through these checks first, so that no
// input makes compiled code touch memory outside its buffers or end the process. A failed check
// raises the error PyTorch raises, through the runtime's tvmbridge.check_values (tvm_module.h).
#pragma once

#include <string>

#include "frontend/converter.h"

namespace tvmbridge::frontend {

// Whether the static shape of `x` has no elements (nothing to check, read or write).
bool IsEmpty(ConversionContext& ctx, const relax::Expr& x);

// How PyTorch's op reads a negative index: as an error (embedding, index_select, gather,
// scatter, one_hot) or counted from the end (take, index, index_put).
enum class NegativeIndices { kRejected, kWrapped };

// Checks at run time that every element of the integer tensor `indices` lies in
// [0, extent), or [-extent, extent) when negatives wrap, raising an IndexError that names the
// node's op, the offending index and the range otherwise. Returns the indices to read with:
// negative ones wrapped to extent + index where PyTorch wraps them.
relax::Expr CheckedIndices(ConversionContext& ctx, const torch::jit::Node& node,
                           const relax::Expr& indices, const relax::Dim& extent, int64_t dim,
                           NegativeIndices negatives);

// Checks at run time that no element of the integer tensor `x` is negative (`what` says what
// the op expected), raising a RuntimeError that names the op and the offending value.
void CheckNotNegative(ConversionContext& ctx, const torch::jit::Node& node, const relax::Expr& x,
                      const std::string& what);

// Checks at run time that `dividend / divisor` (integers, broadcast) cannot trap: no divisor
// is zero (PyTorch raises "ZeroDivisionError"), and no lowest integer is divided by -1 (the
// quotient overflows; x86 traps, and PyTorch 2.14.1 dies of SIGFPE there; here it raises).
// Floating operands need no check.
void CheckIntegerDivision(ConversionContext& ctx, const torch::jit::Node& node,
                          const relax::Expr& dividend, const relax::Expr& divisor);

}  // namespace tvmbridge::frontend
