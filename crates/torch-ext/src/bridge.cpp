// slimbench's C++ bridge to libtorch: registered operators that tch does not expose,
// called by name through c10::Dispatcher with boxed arguments (IValues). One generic
// entry point keeps this file small: the Rust side (src/lib.rs) builds the argument
// list and gives each op a typed, safe wrapper.
//
// Conventions:
// * tensors cross as `at::Tensor*`, the same handle tch's `Tensor` wraps;
// * any other value (e.g. fbgemm's packed weights, a custom class) crosses as an opaque
//   `c10::IValue*` that Rust owns and frees with sbx_value_free;
// * no C++ exception crosses the boundary: a failing call returns null / -1 and leaves
//   its message in a thread-local string read with sbx_last_error (guarded.hpp, shared
//   with dist.cpp, the distributed half of the bridge).
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/stack.h>
#include <ATen/ATen.h>

#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "guarded.hpp"

namespace sbx {
std::string& last_error() {
  thread_local std::string message;
  return message;
}
}  // namespace sbx

using sbx::guarded;

extern "C" {

const char* sbx_last_error() { return sbx::last_error().c_str(); }

c10::IValue* sbx_value_none() { return new c10::IValue(); }
c10::IValue* sbx_value_bool(int v) { return new c10::IValue(v != 0); }
c10::IValue* sbx_value_int(int64_t v) { return new c10::IValue(v); }
c10::IValue* sbx_value_double(double v) { return new c10::IValue(v); }
c10::IValue* sbx_value_tensor(const at::Tensor* t) { return new c10::IValue(*t); }
c10::IValue* sbx_value_int_list(const int64_t* v, size_t n) {
  return new c10::IValue(c10::List<int64_t>(std::vector<int64_t>(v, v + n)));
}
c10::IValue* sbx_value_clone(const c10::IValue* v) { return new c10::IValue(*v); }
void sbx_value_free(c10::IValue* v) { delete v; }

// 0 none, 1 tensor, 2 bool, 3 int, 4 double, 5 anything else (an object, a tuple, ...).
int sbx_value_kind(const c10::IValue* v) {
  if (v->isNone()) return 0;
  if (v->isTensor()) return 1;
  if (v->isBool()) return 2;
  if (v->isInt()) return 3;
  if (v->isDouble()) return 4;
  return 5;
}

// The IValue's type as TorchScript names it, for error messages ("Tensor",
// "__torch__.torch.classes.quantized.LinearPackedParamsBase", ...). Caller frees.
char* sbx_value_type(const c10::IValue* v) {
  return guarded([&] { return strdup(v->type()->str().c_str()); }, (char*)nullptr);
}

// A new tensor handle for tch, or null when the value is not a tensor.
at::Tensor* sbx_value_to_tensor(const c10::IValue* v) {
  return guarded(
      [&]() -> at::Tensor* {
        if (!v->isTensor()) throw std::runtime_error("the value is not a tensor: " + v->type()->str());
        return new at::Tensor(v->toTensor());
      },
      (at::Tensor*)nullptr);
}

// 1 when `name.overload` is a registered operator, 0 when not.
int sbx_op_exists(const char* name, const char* overload) {
  return c10::Dispatcher::singleton().findSchema({name, overload}).has_value() ? 1 : 0;
}

// The operator's schema ("quantized::linear_dynamic(Tensor X, ...) -> Tensor Y"), or
// null when it is not registered. Caller frees.
char* sbx_op_schema(const char* name, const char* overload) {
  auto op = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!op.has_value()) return nullptr;
  std::ostringstream s;
  s << op->schema();
  return strdup(s.str().c_str());
}

// Call `name.overload` with `nargs` arguments. Up to `max_outs` results are returned as
// new IValues in `outs` (their number in `*nouts`). 0 on success, -1 on failure.
int sbx_call(const char* name, const char* overload, c10::IValue* const* args, size_t nargs,
             c10::IValue** outs, size_t max_outs, size_t* nouts) {
  return guarded(
      [&] {
        auto op = c10::Dispatcher::singleton().findSchema({name, overload});
        if (!op.has_value()) {
          std::string full = std::string(name) + (overload[0] ? std::string(".") + overload : "");
          throw std::runtime_error("no operator `" + full + "` is registered in this libtorch");
        }
        torch::jit::Stack stack;
        stack.reserve(nargs);
        for (size_t i = 0; i < nargs; i++) stack.push_back(*args[i]);
        op->callBoxed(&stack);
        if (stack.size() > max_outs) {
          throw std::runtime_error("operator returned " + std::to_string(stack.size()) +
                                   " values, more than the " + std::to_string(max_outs) + " expected");
        }
        for (size_t i = 0; i < stack.size(); i++) outs[i] = new c10::IValue(std::move(stack[i]));
        *nouts = stack.size();
        return 0;
      },
      -1);
}

void sbx_free_string(char* s) { free(s); }

// The reduced precision CUDA autocast casts to (tch can switch autocast on, not pick
// its dtype): 5 = Half, 15 = BFloat16 (c10::ScalarType codes). 0 on success.
int sbx_set_cuda_autocast_dtype(int scalar_type) {
  return guarded(
      [&] {
        auto t = static_cast<c10::ScalarType>(scalar_type);
        if (t != c10::ScalarType::Half && t != c10::ScalarType::BFloat16) {
          throw std::runtime_error("autocast computes in float16 or bfloat16 only");
        }
        at::autocast::set_autocast_dtype(at::kCUDA, t);
        return 0;
      },
      -1);
}

// The CUDA autocast dtype (a c10::ScalarType code).
int sbx_cuda_autocast_dtype() {
  return static_cast<int>(at::autocast::get_autocast_dtype(at::kCUDA));
}

}  // extern "C"
