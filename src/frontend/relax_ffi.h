// The tvm-ffi calls that relax_builder.cc (builder, types, symbols) and relax_ops.cc (one
// function per Relax op) share. Internal to those two files: converters use relax_builder.h.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <tvm/ffi/any.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/dtype.h>
#include <tvm/ffi/function.h>

#include "frontend/relax_builder.h"

namespace tvmbridge::relax {

// Looks a registry function up once and keeps it; throws if this TVM lacks it.
const tvm::ffi::Function& Global(const std::string& name);

template <typename... Args>
Expr Call(const std::string& name, Args&&... args) {
  return Global(name)(std::forward<Args>(args)...).template cast<Expr>();
}

tvm::ffi::Array<tvm::ffi::Any> ToArray(const IntList& values);
tvm::ffi::Array<tvm::ffi::Any> ToArray(const Dims& dims);
// A Relax tuple of int64 immediates: how strided_slice takes its index lists.
tvm::ffi::Any IntTuple(const IntList& values);
DLDataType DLDataTypeOf(const std::string& dtype);
tvm::ffi::Any FloatImm(double value);

// The registry names relax_ops.cc calls, for RequiredGlobalNames.
const std::vector<std::string>& OpGlobalNames();

}  // namespace tvmbridge::relax
